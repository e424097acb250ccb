r"""Fit-once curvature states and damped inverse-Hessian-vector products.

`fit_curvature` factorises (or records the operator of) the curvature $G$ of the
mean training loss once; `ihvp` then applies $(G + \lambda I)^{-1}$ to any number of
parameter pytrees. The same pair serves every strategy of `IHVPConfig`.
"""

import dataclasses
import itertools
import math
from typing import Any, NamedTuple

import einops
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float

from jaxfeat import ntk
from jaxfeat._src import linalg
from jaxfeat._src.arrays import to_device
from jaxfeat._src.checks import check_count, check_finite, is_concrete
from jaxfeat._src.compile_options import CostAwareJit
from jaxfeat._src.typing import PRNGKey
from jaxfeat.influence._config import (
    KRONECKER,
    MATRIX_FREE,
    IHVPConfig,
)
from jaxfeat.influence._grads import (
    PAD_LABEL,
    Model,
    check_targets,
    dense_from_matrix,
    dense_matrix,
    example_keys,
    model_apply,
    output_loss,
    output_pseudo_grads,
)
from jaxfeat.influence._kfac import (
    eig_dtype,
    ekfac_lambda_sums,
    finish_kronecker,
    fit_kronecker,
    kron_bases,
    kron_moments,
    kronecker_solve,
    pseudo_factors,
)
from jaxfeat.influence._krylov import arnoldi, power_iteration, start_vector
from jaxfeat.influence._stream import stream_sum
from jaxfeat.influence._taps import (
    find_dense_layers,
    leaves_to_matrix,
    matrix_to_leaves,
)
from jaxfeat.influence._validation import (
    check_invertible,
    check_lissa_scale,
    check_solve,
    check_tree_finite,
)


class DenseFactors(NamedTuple):
    """Eigendecomposition of a dense curvature matrix (`exact`) or its top part."""

    q: Float[Array, "p k"]  # eigenvectors (columns)
    evals: Float[Array, " k"]  # eigenvalues


class OperatorFactors(NamedTuple):
    """What curvature-vector products need (`cg`, `lissa`)."""

    params: Any  # linearisation point
    x: Array  # training inputs (n, ...)
    aux: Array  # (n, k, k) output curvatures (GGN) or targets (Hessian)
    scale: Array  # LiSSA scale (unused by CG)
    # LiSSA: |Rayleigh quotient| of G + lambda I after 30 power steps, a lower
    # bound on its spectral radius (0 for CG)
    radius: Array = None
    # LiSSA with curvature="hessian": a Rayleigh quotient of H + lambda I near its
    # smallest eigenvalue (30 shifted power steps), an upper bound on it; <= 0
    # proves the damped Hessian indefinite (None otherwise)
    floor: Array = None


@dataclasses.dataclass(frozen=True)
class CurvatureState:
    r"""A fitted curvature $G$ with its damping, ready for `ihvp`.

    Attributes:
      factors: strategy-specific arrays: `DenseFactors` (`exact`, `arnoldi`),
        `OperatorFactors` (`cg`, `lissa`), a tuple of per-layer
        `KroneckerFactors` (`kfac`, `ekfac`) or `()` (`identity`).
      damping: $\lambda$ as a 0-d array, or a tuple of per-layer 0-d arrays for
        `kfac`/`ekfac`.
      cfg: the `IHVPConfig` used (static).
      model: the model (callable or `ntk.MLPConfig`, static).
      treedef: tree structure of the parameters (static).
      shapes: leaf shapes of the parameters (static).
      layers: the dense layers (`DenseTap`) of a callable model found in its
        jaxpr, or `()` (an `MLPConfig`, or a model with other parameters: then
        only the unfactored strategies and scores apply) (static).
    """

    factors: Any
    damping: Any
    cfg: IHVPConfig = dataclasses.field(metadata=dict(static=True))
    model: Any = dataclasses.field(metadata=dict(static=True))
    treedef: Any = dataclasses.field(metadata=dict(static=True))
    shapes: tuple = dataclasses.field(metadata=dict(static=True))
    layers: tuple = dataclasses.field(default=(), metadata=dict(static=True))

    @property
    def factored(self) -> bool:
        r"""Whether gradients can be kept as per-layer $(\bar a, Ds)$ factors."""
        return isinstance(self.model, ntk.MLPConfig) or bool(self.layers)


jax.tree_util.register_dataclass(CurvatureState)


# ----------------------------------------------------------------- operators


def _out_curvatures(model, params, x, y, keys, cfg):
    r"""Per-example output-space curvatures $M_n = R^\top \mathrm{diag}(w) R$."""

    def one(xi, yi, ki):
        f = model_apply(model, params, xi)
        r, w = output_pseudo_grads(
            f, yi, ki, loss=cfg.loss, fisher=cfg.fisher, n_samples=cfg.n_samples
        )
        r = r.reshape(r.shape[0], -1)  # sequence outputs: (position, class) flat
        return einops.einsum(r, w, r, "c k, c, c l -> k l")

    return jax.vmap(one)(x, y, keys)


def _flat_apply(model, params, xi):
    """One example's output raveled (a sequence's `(T, k)` becomes `(T k,)`)."""
    return model_apply(model, params, xi).reshape(-1)


def _batch_apply(model, params, x):
    return jax.vmap(lambda xi: _flat_apply(model, params, xi))(x)


def _mean_loss(model, loss, params, x, y):
    losses = jax.vmap(
        lambda xi, yi: output_loss(model_apply(model, params, xi), yi, loss)
    )
    return jnp.mean(losses(x, y))


def curvature_vp(model, cfg: IHVPConfig, op: OperatorFactors, v):
    r"""$Gv$ (GGN $J^\top M J$ or Hessian) for a pytree `v` like the parameters."""
    if cfg.curvature == "hessian":
        grad = jax.grad(lambda p: _mean_loss(model, cfg.loss, p, op.x, op.aux))
        return jax.jvp(grad, (op.params,), (v,))[1]
    fwd = lambda p: _batch_apply(model, p, op.x)
    out, jv = jax.jvp(fwd, (op.params,), (v,))
    mjv = einops.einsum(op.aux, jv, "n k l, n l -> n k") / op.x.shape[0]
    _, vjp_fn = jax.vjp(fwd, op.params)
    return vjp_fn(mjv.astype(out.dtype))[0]


def _ggn_trace(model, op: OperatorFactors) -> Array:
    """trace(G) = mean_n tr(J_n^T M_n J_n), from one VJP per output (exact)."""

    def one(xi, m):
        f = lambda p: _flat_apply(model, p, xi)
        out, vjp_fn = jax.vjp(f, op.params)
        rows = jax.vmap(vjp_fn)(jnp.eye(out.shape[0], dtype=out.dtype))[0]
        flat = jax.vmap(lambda t: ravel_pytree(t)[0])(rows)  # (k, p) = J
        return jnp.sum(m * (flat @ flat.T))

    return jnp.mean(jax.vmap(one)(op.x, op.aux))


def _dense_curvature(model, params, x, y, keys, cfg):
    flat, unravel = ravel_pytree(params)
    if cfg.curvature == "hessian":
        return jax.hessian(lambda t: _mean_loss(model, cfg.loss, unravel(t), x, y))(
            flat
        )
    m = _out_curvatures(model, params, x, y, keys, cfg)
    jac = jax.vmap(
        lambda xi: jax.jacrev(lambda t: _flat_apply(model, unravel(t), xi))(flat)
    )(x)
    return einops.einsum(jac, m, jac, "n k p, n k l, n l q -> p q") / x.shape[0]


def _tree_axpy(a, x, y):
    return jax.tree_util.tree_map(lambda xi, yi: a * xi + yi, x, y)


# ----------------------------------------------------------------------- fit


def _fit(model, params, x, y, key, cfg: IHVPConfig, layers=()):
    keys = example_keys(key, 0, x.shape[0])
    edt = eig_dtype()
    if cfg.strategy == "identity":
        return (), jnp.asarray(0.0 if cfg.damping is None else cfg.damping, edt)
    if cfg.strategy in KRONECKER:
        return fit_kronecker(params, x, y, keys, model=model, layers=layers, cfg=cfg)
    if cfg.strategy == "exact":
        g = _dense_curvature(model, params, x, y, keys, cfg).astype(edt)
        evals, q = linalg.eigh(0.5 * (g + g.T))
        if cfg.curvature == "ggn":  # PSD: negative eigenvalues are round-off
            evals = jnp.maximum(evals, 0.0)
        # |.|: an indefinite Hessian's mean eigenvalue can be negative
        lam = 0.1 * jnp.mean(jnp.abs(evals)) if cfg.damping is None else cfg.damping
        return DenseFactors(q, evals), jnp.asarray(lam, edt)
    aux = (
        y
        if cfg.curvature == "hessian"
        else _out_curvatures(model, params, x, y, keys, cfg)
    )
    flat, unravel = ravel_pytree(params)
    zero = jnp.zeros((), flat.dtype)
    op = OperatorFactors(params, x, aux, zero, zero)
    if cfg.damping is None:
        lam = 0.1 * _ggn_trace(model, op) / flat.shape[0]
    else:
        lam = jnp.asarray(cfg.damping, flat.dtype)
    matvec = lambda u: ravel_pytree(curvature_vp(model, cfg, op, unravel(u)))[0]
    if cfg.strategy == "arnoldi":
        factors = DenseFactors(
            *arnoldi(
                matvec, flat.shape[0], cfg.arnoldi_iters, cfg.arnoldi_rank, flat.dtype
            )
        )
        return factors, lam
    if cfg.strategy == "lissa":
        damped = lambda u: matvec(u) + lam * u
        start = start_vector(flat.shape[0], flat.dtype)
        top = jnp.abs(power_iteration(damped, start))
        if cfg.lissa_scale is None:
            scale = 1.5 * top
        else:
            scale = jnp.asarray(cfg.lissa_scale, flat.dtype)
        floor = None
        if cfg.curvature == "hessian":  # the GGN + lambda > 0 is positive definite
            shift = 1.5 * top  # largest eigenvalue of shift - A: shift - lambda_min
            floor = shift - power_iteration(lambda u: shift * u - damped(u), start)
        op = op._replace(scale=scale, radius=top, floor=floor)
    return op, lam


_fit_jit = CostAwareJit(_fit, static_argnames=("model", "cfg", "layers"))


def fit_curvature(
    model: Model,
    params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    cfg: IHVPConfig,
    key: PRNGKey | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> CurvatureState:
    r"""Fits the curvature $G$ of the mean training loss once, for many `ihvp` calls.

    `exact` builds the dense $G$ (`ravel_pytree` order) and eigendecomposes it;
    `cg`/`lissa` record the linearisation point for $G$-vector products; `arnoldi`
    keeps the top eigenpairs; `kfac`/`ekfac` fit per-layer Kronecker factors of
    every dense layer: those of a `jaxfeat.ntk` MLP (the NTK scales $s_w$, $s_b$
    folded into $\bar a$), or those found in the jaxpr of a callable model (any
    `x @ W (+ b)`, e.g. flax `nnx.Linear`/`linen.Dense` through `ntk.from_nnx` or
    `module.apply`; every parameter must belong to one). A sequence model maps one
    example to `(T, k)` outputs with labels `(T,)`; its loss is summed over
    positions and the factors follow K-FAC "expand" (see `fit_kronecker`).
    Eigendecompositions run in float64 when x64 is enabled. `damping=None` gives
    $0.1\times$ the mean eigenvalue of $G$ (per layer, of $\Lambda_\ell$, for
    `kfac`/`ekfac`; of $|e_i|$ for an exact `curvature="hessian"`, so that an
    indefinite Hessian still gets $\lambda > 0$).

    Args:
      model: `apply_fn(params, x) -> (k,)` (or `(T, k)` for a sequence) for one
        example, or an `ntk.MLPConfig`.
      params: parameters $\theta^s$ (for an `MLPConfig`: a tuple of `ntk.Dense`).
      x: training inputs `(n, ...)`.
      y: integer labels `(n,)` in `[0, k)` (cross-entropy; `(n, T)` for a
        sequence) or targets `(n, k)` (MSE; `(n, T, k)`), checked against the
        model's output shape.
      cfg: the strategy, Fisher mode and damping.
      key: PRNG key for `fisher="sampled"` (labels drawn per example with
        `fold_in(key, n)`); required there, ignored otherwise.
      chunk_size: `kfac`/`ekfac` only: stream the training set in chunks of this
        many examples (two passes: $A$, $S$, then $\Lambda$ in their eigenbases),
        each sharded over every visible device, so memory is bounded by the chunk;
        the factors do not depend on it (sampled labels included). `None`: all
        at once.
      progress: show a progress bar over chunks.

    Returns:
      A `CurvatureState`.

    Raises:
      ValueError: for a `kfac`/`ekfac` model with a parameter outside every dense
        layer (the error names it), a missing
        `key` for sampled labels, `damping=None` with a matrix-free Hessian, or
        mismatched `x`/`y`; for NaN/inf in concrete `params`, `x` or (MSE) `y`;
        for targets that do not fit the model output (MSE: `y.shape[1:]` must be
        the output shape; cross-entropy: integer labels of the output's leading
        shape, concrete values in `[0, k)`); and (concrete fits of `exact`,
        `arnoldi`, `kfac`, `ekfac`) for a damped curvature that is singular or
        not positive definite, naming `damping` (see `check_invertible`); for
        an `arnoldi_rank` above the parameter count; for a concrete
        `lissa_scale` at or below half the power-iteration bound on the spectral
        radius of $G + \lambda I$, or (`lissa` with `curvature="hessian"`) an
        indefinite $H + \lambda I$ shown by a non-positive Rayleigh quotient,
        naming `damping` (see `check_lissa_scale`).
      TypeError: for non-integer cross-entropy labels or a non-int `chunk_size`.

    References:
      Grosse et al. 2023, arXiv:2308.03296, eqs. (16)-(20); George et al. 2018,
      arXiv:1806.03884; Martens & Grosse 2015, arXiv:1503.05671 (K-FAC); damping
      heuristic from kronfluence (`HEURISTIC_DAMPING_SCALE = 0.1`).
    """
    if not isinstance(model, ntk.MLPConfig) and not callable(model):
        raise ValueError(f"model: expected a callable or MLPConfig; got {model!r}")
    if cfg.needs_key and cfg.strategy != "identity" and key is None:
        raise ValueError("key: fisher='sampled' draws labels; pass a PRNG key")
    if (
        cfg.damping is None
        and cfg.curvature == "hessian"
        and cfg.strategy in MATRIX_FREE
    ):
        raise ValueError(
            "damping: None (0.1 x mean eigenvalue) needs the trace, which is only "
            "computed for curvature='ggn' or strategy='exact'; pass a float"
        )
    x, y = to_device(x), to_device(y)
    check_tree_finite("params", params)
    check_finite("x", x)
    check_targets("x", x, "y", y, model=model, params=params, loss=cfg.loss)
    if (
        cfg.loss == "cross_entropy"
        and is_concrete(y)
        and jnp.size(y)
        and np.all(np.asarray(y) == PAD_LABEL)
    ):
        # no real position: the curvature is 0/0 (was NaN, blamed on damping)
        raise ValueError(
            f"y: every position is padding (PAD_LABEL = {PAD_LABEL}); the curvature "
            "needs at least one real label"
        )
    leaves, treedef = jax.tree_util.tree_flatten(params)
    shapes = tuple(jnp.shape(leaf) for leaf in leaves)
    n_params = sum(math.prod(s) for s in shapes)
    if cfg.strategy == "arnoldi" and cfg.arnoldi_rank > n_params:
        raise ValueError(
            f"arnoldi_rank: expected at most the {n_params} parameters; got "
            f"{cfg.arnoldi_rank}"
        )
    layers = _model_layers(model, params, x, cfg)
    if chunk_size is None:
        factors, damping = _fit_jit(model, params, x, y, key, cfg, layers)
    else:
        check_count("chunk_size", chunk_size, 1)
        if cfg.strategy not in KRONECKER:
            raise ValueError(
                f"chunk_size: streamed fitting is for 'kfac'/'ekfac'; strategy "
                f"{cfg.strategy!r} needs the whole training set at once"
            )
        factors, damping = _fit_streamed(
            model, layers, params, x, y, key, cfg, chunk_size, progress
        )
    check_invertible(cfg, factors, damping)
    check_lissa_scale(cfg, factors)
    return CurvatureState(factors, damping, cfg, model, treedef, shapes, layers)


def _chunk_moments(params, x, y, keys, valid, model, layers, cfg):
    per, w = pseudo_factors(
        params, x, y, keys, valid, model=model, layers=layers, cfg=cfg
    )
    return kron_moments(per, w)


def _chunk_lambda(params, x, y, keys, valid, bases, model, layers, cfg):
    per, w = pseudo_factors(
        params, x, y, keys, valid, model=model, layers=layers, cfg=cfg
    )
    return ekfac_lambda_sums(per, w, bases)


_STATIC = ("model", "layers", "cfg")
_moments_jit = CostAwareJit(_chunk_moments, static_argnames=_STATIC)
_lambda_jit = CostAwareJit(_chunk_lambda, static_argnames=_STATIC)
_bases_jit = CostAwareJit(kron_bases, static_argnames=("n",))
_finish_jit = CostAwareJit(finish_kronecker, static_argnames=("n", "cfg"))


def _fit_streamed(model, layers, params, x, y, key, cfg, chunk_size, progress):
    """Kronecker factors accumulated over chunks: the sums of `fit_kronecker`."""
    n = x.shape[0]
    keys = example_keys(key, 0, n)
    kw = dict(model=model, layers=layers, cfg=cfg)
    moments = stream_sum(
        lambda n_c, xc, yc, kc, vc: _moments_jit.call(
            n_c, params, xc, yc, kc, vc, **kw
        ),
        x,
        y,
        keys,
        chunk_size,
        progress,
        "K-FAC factors",
    )
    bases = _bases_jit(moments, n=n)
    if cfg.strategy == "ekfac":
        lam_sums = stream_sum(
            lambda n_c, xc, yc, kc, vc: _lambda_jit.call(
                n_c, params, xc, yc, kc, vc, bases, **kw
            ),
            x,
            y,
            keys,
            chunk_size,
            progress,
            "EK-FAC eigenvalues",
        )
    else:
        lam_sums = None  # K-FAC keeps the Kronecker eigenvalue products
    return _finish_jit(bases, lam_sums, n=n, cfg=cfg)


def _model_layers(model, params, x, cfg) -> tuple:
    """Dense layers of a callable model (required for `kfac`/`ekfac`)."""
    if isinstance(model, ntk.MLPConfig):
        return ()
    try:
        return find_dense_layers(model, params, x[0])
    except ValueError as err:
        if cfg.strategy in KRONECKER:
            raise ValueError(f"model: strategy {cfg.strategy!r}: {err}") from err
        return ()


# ---------------------------------------------------------------------- ihvp


def _flat(v) -> Array:
    return jnp.concatenate([leaf.ravel() for leaf in jax.tree_util.tree_leaves(v)])


def _unflat(flat: Array, treedef, shapes):
    sizes = [math.prod(s) for s in shapes]
    parts = jnp.split(flat, list(itertools.accumulate(sizes))[:-1]) if sizes else []
    leaves = [part.reshape(s) for part, s in zip(parts, shapes, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def ihvp_one(state: CurvatureState, v):
    r"""$(G + \lambda I)^{-1} v$ for one pytree `v` (traceable; no validation)."""
    cfg, f, lam = state.cfg, state.factors, state.damping
    dtype = jax.tree_util.tree_leaves(v)[0].dtype
    if cfg.strategy == "identity":
        return v
    if cfg.strategy in KRONECKER and isinstance(state.model, ntk.MLPConfig):
        return tuple(
            dense_from_matrix(kronecker_solve(fl, lam_l, dense_matrix(vl)))
            for fl, lam_l, vl in zip(f, lam, v, strict=True)
        )
    if cfg.strategy in KRONECKER:
        leaves = jax.tree_util.tree_leaves(v)
        out = list(leaves)
        for fl, lam_l, tap in zip(f, lam, state.layers, strict=True):
            mat = kronecker_solve(fl, lam_l, leaves_to_matrix(tap, leaves))
            matrix_to_leaves(tap, mat, out)
        return jax.tree_util.tree_unflatten(state.treedef, out)
    if cfg.strategy in ("exact", "arnoldi"):
        flat = _flat(v).astype(f.q.dtype)
        out = f.q @ ((f.q.T @ flat) / (f.evals + lam))
        return _unflat(out.astype(dtype), state.treedef, state.shapes)
    # The operator runs in the parameters' dtypes (jvp refuses tangents of another
    # float dtype); the result comes back in v's.
    v_dtypes = [leaf.dtype for leaf in jax.tree_util.tree_leaves(v)]
    v = jax.tree_util.tree_map(lambda vi, p: vi.astype(p.dtype), v, f.params)
    out = _krylov_solve(state, v)
    leaves, treedef = jax.tree_util.tree_flatten(out)
    back = [o.astype(d) for o, d in zip(leaves, v_dtypes, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, back)


def _krylov_solve(state: CurvatureState, v):
    # CG or LiSSA on (G + lam) u = v, v in the parameters' dtypes
    cfg, f, lam = state.cfg, state.factors, state.damping
    a_fn = lambda u: _tree_axpy(
        lam, u, curvature_vp(state.model, cfg, f, u)
    )  # (G + lam) u
    if cfg.strategy == "cg":
        out, _ = jax.scipy.sparse.linalg.cg(
            a_fn, v, tol=cfg.cg_tol, maxiter=cfg.cg_maxiter
        )
        return out

    def lissa_step(_, h):  # h <- v + (I - (G + lam)/scale) h
        ah = a_fn(h)
        return jax.tree_util.tree_map(
            lambda vi, hi, ai: vi + hi - ai / f.scale, v, h, ah
        )

    h = lax.fori_loop(0, cfg.lissa_iters, lissa_step, v)
    out = jax.tree_util.tree_map(lambda hi: hi / f.scale, h)
    # The residual v - (G + lam) out is (I - (G + lam)/scale)^(iters+1) v: no
    # longer than v while the recursion contracts. Longer means it diverged (scale
    # too small, or an indefinite damped Hessian), possibly to finite values: NaN
    # then replaces them, so that a wrong answer is never returned silently.
    res = _flat(_tree_axpy(-1.0, a_fn(out), v))
    v_norm = jnp.linalg.norm(_flat(v))
    grew = jnp.linalg.norm(res) > (1 + 100 * jnp.finfo(res.dtype).eps) * v_norm
    return jax.tree_util.tree_map(lambda o: jnp.where(grew, jnp.nan, o), out)


def _ihvp(state, v, batched: bool):
    if batched:
        return jax.vmap(ihvp_one, in_axes=(None, 0))(state, v)
    return ihvp_one(state, v)


_ihvp_jit = jax.jit(_ihvp, static_argnames="batched")


def is_batched(state: CurvatureState, v) -> bool:
    """Whether `v` carries a leading batch axis over the fitted parameter shapes."""
    leaves, treedef = jax.tree_util.tree_flatten(v)
    got = tuple(jnp.shape(leaf) for leaf in leaves)
    if treedef == state.treedef and got == state.shapes:
        return False
    if (
        treedef == state.treedef
        and all(
            len(g) == len(s) + 1 and g[1:] == s
            for g, s in zip(got, state.shapes, strict=True)
        )
        and len({g[0] for g in got}) == 1
    ):
        return True
    raise ValueError(
        f"v: expected a pytree with leaf shapes {state.shapes} (or with one leading "
        f"batch axis) and structure {state.treedef}; got {got}, {treedef}"
    )


def ihvp(state: CurvatureState, v):
    r"""Damped inverse curvature-vector product $(G + \lambda I)^{-1} v$.

    `v` is a pytree like the fitted parameters, or a batch of them (one leading
    axis on every leaf), which is mapped with `vmap`. `identity` returns `v`;
    `arnoldi` solves in the span of its top eigenvectors (the complement is dropped,
    as in Schioppa et al.); `cg` stops at relative residual `cfg.cg_tol`; `lissa`
    runs `cfg.lissa_iters` steps of $h \leftarrow v + (I - (G+\lambda I)/c)h$ and
    returns $h/c$, or NaN when its residual $v - (G+\lambda I)h/c$ is longer than
    $v$ (the recursion diverged: a scale too small or an indefinite damped Hessian;
    named by the concrete check below).

    Args:
      state: from `fit_curvature`.
      v: parameter-shaped pytree, or a batch of them.

    Returns:
      A pytree like `v` (dtype of `v`).

    Raises:
      ValueError: if `v` does not match the fitted parameters, or a concrete `v`
        holds NaN/inf; if a concrete result is not finite (for `lissa` the error
        names `lissa_scale` and `damping`: the recursion diverged).
      TypeError: if a leaf of `v` is not floating point.

    References:
      Koh & Liang 2017, arXiv:1703.04730; Grosse et al. 2023, arXiv:2308.03296.
    """
    batched = is_batched(state, v)
    kinds = {jnp.result_type(leaf) for leaf in jax.tree_util.tree_leaves(v)}
    if any(not jnp.issubdtype(k, jnp.floating) for k in kinds):
        raise TypeError(
            f"v: expected floating-point leaves (the result has v's dtype); got "
            f"{sorted(str(k) for k in kinds)}"
        )
    check_tree_finite("v", v)
    out = _ihvp_jit(state, v, batched)
    check_solve(state, out, "v")
    return out
