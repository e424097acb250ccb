r"""K-FAC and EK-FAC factors of `jaxfeat.ntk` MLPs and their damped inverse.

For a dense layer with per-example (pseudo-)gradient $DW = Ds\,\bar a^\top$
(shape `(o, i + 1)`, see `dense_matrix`), row-major vec gives
$\mathrm{vec}(DW)\mathrm{vec}(DW)^\top = (Ds\,Ds^\top) \otimes (\bar a \bar a^\top)$,
so $G_\ell \approx S \otimes A$ (`jnp.kron(S, A)`) with $A = E[\bar a \bar a^\top]$,
$S = E[Ds\,Ds^\top]$. With $A = Q_A \mathrm{diag}(\lambda_A) Q_A^\top$ and
$S = Q_S \mathrm{diag}(\lambda_S) Q_S^\top$, EK-FAC replaces $\lambda_S\lambda_A^\top$
by $\Lambda = E[(Q_S^\top DW Q_A)^{\odot 2}]$, and
$(G_\ell + \lambda_\ell I)^{-1} V = Q_S[(Q_S^\top V Q_A) \oslash (\Lambda +
\lambda_\ell)]Q_A^\top$.
"""

from typing import NamedTuple

import einops
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxfeat import ntk
from jaxfeat._src import linalg
from jaxfeat.influence._grads import mlp_pseudo_factors, tapped_pseudo_factors


class KroneckerFactors(NamedTuple):
    """One dense layer's factors; `i` counts the homogeneous coordinate."""

    a: Float[Array, "i i"]  # A = E[abar abar^T]
    s: Float[Array, "o o"]  # S = E[sum_c w_c Ds_c Ds_c^T]
    q_a: Float[Array, "i i"]  # eigenvectors of A
    q_s: Float[Array, "o o"]  # eigenvectors of S
    eig_a: Float[Array, " i"]  # eigenvalues of A (clipped at 0)
    eig_s: Float[Array, " o"]  # eigenvalues of S (clipped at 0)
    lam: Float[Array, "o i"]  # Λ (EK-FAC) or eig_s eig_a^T (K-FAC)


def eig_dtype():
    """float64 when x64 is enabled, else float32 (the eigensolve precision)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def psd_eigh(m: Array) -> tuple[Array, Array]:
    """Eigenpairs of a PSD matrix; negative eigenvalues (round-off) clipped to 0."""
    m = m.astype(eig_dtype())
    evals, evecs = linalg.eigh(0.5 * (m + m.T))
    return jnp.maximum(evals, 0.0), evecs


def _pseudo_factors(params, x, y, keys, *, model, layers, cfg):
    """Per layer `(abar (n, T, i+1), ds (n, c, T, o), tok (n, T))`; `w (n, c)`.

    `tok` weighs each position in $A$'s token count: 1 for real positions, 0 for
    padded ones (whose `abar` is zero).
    """
    kw = dict(loss=cfg.loss, fisher=cfg.fisher, n_samples=cfg.n_samples)
    if isinstance(model, ntk.MLPConfig):
        per, w = mlp_pseudo_factors(params, x, y, keys, mlp=model, **kw)
        ones = jnp.ones((x.shape[0], 1), w.dtype)
        return tuple((a[:, None], d[:, :, None], ones) for a, d in per), w
    return tapped_pseudo_factors(params, x, y, keys, model=model, layers=layers, **kw)


def pseudo_factors(params, x, y, keys, valid, *, model, layers, cfg):
    """`_pseudo_factors` with padded rows (`valid = 0`) given zero weight."""
    per, w = _pseudo_factors(params, x, y, keys, model=model, layers=layers, cfg=cfg)
    v = valid.astype(w.dtype)
    per = tuple(
        (a * v[:, None, None].astype(a.dtype), d, tok * v[:, None].astype(tok.dtype))
        for a, d, tok in per
    )
    return per, w * v[:, None]


def kron_moments(per, w):
    """Per layer the unnormalised sums `(sum abar abar^T, sum w Ds Ds^T, tokens)`."""
    return tuple(
        (
            einops.einsum(abar, abar, "n t i, n t j -> i j"),
            einops.einsum(w, ds, ds, "n c, n c t o, n c t q -> o q"),
            jnp.sum(tok),
        )
        for abar, ds, tok in per
    )


def kron_bases(moments, n):
    """Normalised `A` (per real token), `S` (per example), eigenpairs, products."""
    out = []
    for sa, ss, n_tok in moments:
        a, s = sa / n_tok.astype(sa.dtype), ss / n
        eig_a, q_a = psd_eigh(a)
        eig_s, q_s = psd_eigh(s)
        lam = jnp.outer(eig_s, eig_a)
        out.append(KroneckerFactors(a, s, q_a, q_s, eig_a, eig_s, lam))
    return tuple(out)


def ekfac_lambda_sums(per, w, bases):
    r"""Per layer $\sum_{n,c} w_{n,c}(Q_S^\top DW_{n,c} Q_A)^{\odot 2}$ (no $1/N$)."""
    out = []
    for (abar, ds, _), f in zip(per, bases, strict=True):
        ds_rot = einops.einsum(ds.astype(f.q_s.dtype), f.q_s, "n c t o, o q -> n c t q")
        a_rot = einops.einsum(abar.astype(f.q_a.dtype), f.q_a, "n t i, i j -> n t j")
        wq = w.astype(f.q_s.dtype)
        if abar.shape[1] == 1:  # rank one: (Q_S^T Ds)^2 (Q_A^T a)^2
            lam = einops.einsum(
                wq, ds_rot[:, :, 0] ** 2, a_rot[:, 0] ** 2, "n c, n c o, n i -> o i"
            )
        else:
            dw = einops.einsum(ds_rot, a_rot, "n c t o, n t i -> n c o i")
            lam = einops.einsum(wq, dw**2, "n c, n c o i -> o i")
        out.append(lam)
    return tuple(out)


def finish_kronecker(bases, lam_sums, n, cfg):
    r"""Factors with $\Lambda$ (EK-FAC; `lam_sums=None` keeps K-FAC's) and damping."""
    if lam_sums is None:
        lam_sums = (None,) * len(bases)
    factors, damping = [], []
    for f, ls in zip(bases, lam_sums, strict=True):
        lam = f.lam if ls is None else ls / n
        factors.append(f._replace(lam=lam))
        damping.append(
            0.1 * jnp.mean(lam)
            if cfg.damping is None
            else jnp.asarray(cfg.damping, lam.dtype)
        )
    return tuple(factors), tuple(damping)


def fit_kronecker(params, x, y, keys, *, model, layers, cfg):
    r"""Per-layer `KroneckerFactors` and damping (traced under `jit`).

    With $T$ positions per example (tokens; $T = 1$ for vector inputs) the factors
    follow K-FAC "expand" (Eschenhagen et al. 2023): $A = \frac{1}{NT}\sum_{n,t}
    \bar a_{n,t}\bar a_{n,t}^\top$ (padded positions, label `PAD_LABEL`, left
    out of the sum and of the count $NT$), $S = \frac1N \sum_{n,c} w_{n,c} \sum_t
    Ds_{n,c,t} Ds_{n,c,t}^\top$, and $\Lambda = \frac1N\sum_{n,c} w_{n,c}
    (Q_S^\top DW_{n,c} Q_A)^{\odot 2}$ with the whole-example gradient
    $DW_{n,c} = \sum_t Ds_{n,c,t}\bar a_{n,t}^\top$. (`fit_curvature` with a
    `chunk_size` accumulates the same sums chunk by chunk, in two passes.)
    """
    per, w = _pseudo_factors(params, x, y, keys, model=model, layers=layers, cfg=cfg)
    n = x.shape[0]
    bases = kron_bases(kron_moments(per, w), n)
    lam_sums = ekfac_lambda_sums(per, w, bases) if cfg.strategy == "ekfac" else None
    return finish_kronecker(bases, lam_sums, n, cfg)


def kronecker_solve(f: KroneckerFactors, damping: Array, v: Array) -> Array:
    r"""$Q_S[(Q_S^\top V Q_A) \oslash (\Lambda + \lambda)]Q_A^\top$ for `V` `(o, i)`."""
    vv = v.astype(f.q_s.dtype)
    rot = f.q_s.T @ vv @ f.q_a
    return (f.q_s @ (rot / (f.lam + damping)) @ f.q_a.T).astype(v.dtype)
