r"""Probe grid, reliance, two-class LDA and the shortcut bias.

Reliance of a classifier $\hat y$ on the probe grid is
$R = \mathbb E_z[\hat y(z)\,(s(z_s) - s(z_c))]$ with $s(u) = +1$ for $u \ge 0$ else
$-1$: $+1$ means following the shortcut wherever the features conflict, $-1$ the core.
The shortcut bias is $R_{model} - R_{LDA}$, the extra reliance over the Bayes-optimal
linear classifier fitted to the same inputs.

References:
  Hermann et al. 2024, arXiv:2310.16228 (Sec. 2.2); spec ntk_shortcut.md Sec. 1.4.
  Claims NTK-6, NTK-7.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from jaxfeat._src.arrays import as_float
from jaxfeat._src.typing import Scalar
from jaxfeat.ntk._dynamics import gradient_flow_mse
from jaxfeat.ntk._shortcut import latent_means


def probe_grid(rho_s: Scalar, rho_c: Scalar, n: int = 30) -> Float[Array, "m 2"]:
    r"""The $n \times n$ latent probe grid: $z_s \in [-3\mu_s, 3\mu_s]$, same for $z_c$.

    With an even `n` no point lies on an axis, so every sign is defined; the grid
    decorrelates the two features (half of it is in conflict quadrants).

    Args:
      rho_s: shortcut predictivity.
      rho_c: core predictivity.
      n: points per axis.

    Returns:
      Latents, shape `(n * n, 2)` (shortcut, core).
    """
    dtype = jnp.result_type(as_float(rho_s), as_float(rho_c))
    ms, mc = latent_means(rho_s), latent_means(rho_c)
    gs = jnp.linspace(-3 * ms, 3 * ms, n, dtype=dtype)
    gc = jnp.linspace(-3 * mc, 3 * mc, n, dtype=dtype)
    zs, zc = jnp.meshgrid(gs, gc, indexing="ij")
    return jnp.stack([zs.reshape(-1), zc.reshape(-1)], axis=1)


def _sign(u):
    return jnp.where(u >= 0, 1.0, -1.0).astype(jnp.result_type(u, float))


def reliance(
    decision: Float[ArrayLike, " m"], z_grid: Float[ArrayLike, "m 2"]
) -> Float[Array, ""]:
    r"""Reliance $R = \mathrm{mean}[\hat y\,(s(z_s) - s(z_c))]$ on the probe grid.

    Args:
      decision: real-valued classifier outputs on the grid, shape `(m,)`; their sign
        (0 counts as +1) is the decision.
      z_grid: the grid's latents, shape `(m, 2)`.

    Returns:
      $R \in [-1, 1]$.
    """
    decision, z_grid = as_float(decision), as_float(z_grid)
    if decision.shape != z_grid.shape[:1] or z_grid.shape[1:] != (2,):
        raise ValueError(
            f"decision: expected shape (m,) matching z_grid (m, 2); got "
            f"{decision.shape} and {z_grid.shape}"
        )
    conflict = _sign(z_grid[:, 0]) - _sign(z_grid[:, 1])
    return jnp.mean(_sign(decision) * conflict)


def reliance_of_line(a: Scalar, b: Scalar, mu_s: Scalar, mu_c: Scalar) -> Array:
    r"""Continuum-limit reliance of the line classifier $a z_s + b z_c$ ($b > 0$).

    With $r = a\mu_s/(b\mu_c)$: $R = r - 1$ for $0 \le r \le 1$, $1 - 1/r$ for
    $r \ge 1$, and $-1$ for $a \le 0$ (spec Sec. 1.4).

    Args:
      a: shortcut coefficient.
      b: core coefficient, positive.
      mu_s: grid half-width scale of $z_s$ ($\mu_s$).
      mu_c: the same for $z_c$.

    Returns:
      The reliance, a scalar.
    """
    r = a * mu_s / (b * mu_c)
    safe = jnp.where(r > 0, r, 1.0)
    return jnp.where(r <= 0, -1.0, jnp.where(r <= 1, r - 1, 1 - 1 / safe))


class LDA(NamedTuple):
    r"""A two-class linear discriminant: decision $x \\cdot w + b$."""

    w: Float[Array, " d"]
    b: Float[Array, ""]


@jax.jit
def lda_fit(x: Float[Array, "n d"], y: Float[Array, " n"]) -> LDA:
    r"""Two-class LDA with a pooled covariance and equal priors.

    $w = S^+(m_+ - m_-)$ (least-squares / pseudo-inverse solve, so a rank-deficient
    $S$, e.g. inputs on a 2-D subspace of $\mathbb R^d$, is fine) and
    $b = -w\cdot(m_+ + m_-)/2$. Equivalent to scikit-learn's
    `LinearDiscriminantAnalysis(solver="lsqr")` up to scale.

    Args:
      x: inputs, shape `(n, d)`.
      y: labels in $\{-1, +1\}$, shape `(n,)`.

    Returns:
      `LDA(w, b)`.
    """
    if x.ndim != 2 or y.shape != x.shape[:1]:
        raise ValueError(
            f"y: expected shape ({x.shape[0]},) for x {x.shape}; got {y.shape}"
        )
    pos = (y > 0).astype(x.dtype)
    neg = 1 - pos
    m_pos = (pos @ x) / jnp.sum(pos)
    m_neg = (neg @ x) / jnp.sum(neg)
    centred = x - pos[:, None] * m_pos[None] - neg[:, None] * m_neg[None]
    cov = centred.T @ centred / (x.shape[0] - 2)
    w = jnp.linalg.lstsq(cov, m_pos - m_neg)[0]
    return LDA(w, -w @ (m_pos + m_neg) / 2)


def lda_decision(lda: LDA, x: Float[Array, "n d"]) -> Float[Array, " n"]:
    r"""Decision values $x\\cdot w + b$ of a fitted LDA, shape `(n,)`."""
    return x @ lda.w + lda.b


def shortcut_bias(
    decision_model: Float[ArrayLike, " m"],
    decision_optimal: Float[ArrayLike, " m"],
    z_grid: Float[ArrayLike, "m 2"],
) -> Float[Array, ""]:
    r"""Shortcut bias $R_{model} - R_{optimal}$ on the probe grid, in $[-2, 2]$."""
    return reliance(decision_model, z_grid) - reliance(decision_optimal, z_grid)


def kernel_shortcut_bias(
    k_train_train: Float[Array, "n n"],
    k_grid_train: Float[Array, "m n"],
    y_train: Float[Array, " n"],
    t: Float[ArrayLike, " t"],
    z_grid: Float[Array, "m 2"],
    decision_optimal: Float[Array, " m"],
    *,
    lr: Scalar = 1.0,
) -> Float[Array, " t"]:
    r"""Shortcut bias of a kernel model along MSE gradient flow from $f_0 = 0$.

    The model's grid outputs at time $t$ come from `gradient_flow_mse`; at small $t$
    they are $\propto \sum_i y_i \Theta(x, x_i)$ (the first-step, availability-weighted
    classifier), at large $t$ the kernel interpolant.

    Args:
      k_train_train: kernel on the training inputs, `(n, n)`.
      k_grid_train: kernel between probe-grid and training inputs, `(m, n)`.
      y_train: labels in $\{-1, +1\}$, `(n,)`.
      t: times, `(t,)` (units of `lr`; the rate is $\eta\lambda/n$).
      z_grid: the grid's latents, `(m, 2)`.
      decision_optimal: the optimal (LDA) decisions on the grid, `(m,)`.
      lr: learning rate $\eta$.

    Returns:
      Bias at each time, `(t,)`.

    References:
      Hermann et al. 2024, arXiv:2310.16228 (Sec. 5, NTK account); claim NTK-10.
    """
    predict = gradient_flow_mse(k_train_train, y_train, lr=lr)
    out = predict(t, k_test_train=k_grid_train).test  # (t, m)
    r_opt = reliance(decision_optimal, z_grid)
    return jax.vmap(lambda d: reliance(d, z_grid))(out) - r_opt
