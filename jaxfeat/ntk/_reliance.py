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
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jaxfeat._src import linalg
from jaxfeat._src.arrays import as_float
from jaxfeat._src.checks import (
    check_count,
    check_finite,
    check_positive,
    check_shape,
    is_concrete,
)
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

    Raises:
      ValueError: for `rho_s` or `rho_c` outside $(0.5, 1)$ (checked when concrete).
    """
    check_count("n", n, 1)
    dtype = jnp.result_type(as_float(rho_s), as_float(rho_c))
    ms, mc = latent_means(rho_s, name="rho_s"), latent_means(rho_c, name="rho_c")
    gs = jnp.linspace(-3 * ms, 3 * ms, n, dtype=dtype)
    gc = jnp.linspace(-3 * mc, 3 * mc, n, dtype=dtype)
    zs, zc = jnp.meshgrid(gs, gc, indexing="ij")
    return jnp.stack([zs.reshape(-1), zc.reshape(-1)], axis=1)


def _sign(u):
    """+1 for u >= 0, -1 below, NaN for NaN (a diverged model has no decision)."""
    s = jnp.where(u >= 0, 1.0, -1.0)
    return jnp.where(jnp.isnan(u), jnp.nan, s).astype(jnp.result_type(u, float))


def reliance(
    decision: Float[ArrayLike, " m"], z_grid: Float[ArrayLike, "m 2"]
) -> Float[Array, ""]:
    r"""Reliance $R = \mathrm{mean}[\hat y\,(s(z_s) - s(z_c))]$ on the probe grid.

    Args:
      decision: real-valued classifier outputs on the grid, shape `(m,)`; their sign
        (0 counts as +1) is the decision.
      z_grid: the grid's latents, shape `(m, 2)`.

    Returns:
      $R \in [-1, 1]$; NaN if a decision is NaN (under `jit`).

    Raises:
      ValueError: for mismatched shapes, or a non-finite `decision` (checked when
        concrete: a diverged model must not pass for a classifier).
    """
    return _reliance(decision, z_grid, "decision")


def _reliance(decision, z_grid, name):
    decision, z_grid = as_float(decision), as_float(z_grid)
    if decision.shape != z_grid.shape[:1] or z_grid.shape[1:] != (2,):
        raise ValueError(
            f"{name}: expected shape (m,) matching z_grid (m, 2); got "
            f"{decision.shape} and {z_grid.shape}"
        )
    check_finite(name, decision)
    check_finite("z_grid", z_grid)
    conflict = _sign(z_grid[:, 0]) - _sign(z_grid[:, 1])
    return jnp.mean(_sign(decision) * conflict)


def reliance_of_line(a: Scalar, b: Scalar, mu_s: Scalar, mu_c: Scalar) -> Array:
    r"""Continuum-limit reliance of the line classifier $a z_s + b z_c$.

    With $b > 0$ and $r = a\mu_s/(b\mu_c)$: $R = r - 1$ for $0 \le r \le 1$,
    $1 - 1/r$ for $r \ge 1$, and $-1$ for $a \le 0$ (spec Sec. 1.4). Reliance is odd
    in the classifier, so $b < 0$ gives $R(a, b) = -R(-a, -b)$; $b = 0$ is the
    $|r| \to \infty$ limit, $R = \mathrm{sign}(a)$ ($a = b = 0$ is a constant
    classifier, $R = 0$).

    Args:
      a: shortcut coefficient.
      b: core coefficient (any sign).
      mu_s: grid half-width scale of $z_s$ ($\mu_s > 0$).
      mu_c: the same for $z_c$ ($\mu_c > 0$).

    Returns:
      The reliance, a scalar.

    Raises:
      ValueError: for a non-finite `a` or `b`, or a `mu_s` or `mu_c` that is not
        positive (checked when concrete).
    """
    check_finite("a", a)
    check_finite("b", b)
    check_positive("mu_s", mu_s)
    check_positive("mu_c", mu_c)
    flip = jnp.where(b < 0, -1.0, 1.0)  # R is odd in the classifier
    num, den = flip * a * mu_s, jnp.abs(b) * mu_c
    r = num / jnp.where(den > 0, den, 1.0)
    safe = jnp.where(r > 0, r, 1.0)
    pos_b = jnp.where(r <= 0, -1.0, jnp.where(r <= 1, r - 1, 1 - 1 / safe))
    return flip * jnp.where(den > 0, pos_b, jnp.sign(num))  # b = 0: sign(a z_s)


class LDA(NamedTuple):
    r"""A two-class linear discriminant: decision $x \\cdot w + b$."""

    w: Float[Array, " d"]
    b: Float[Array, ""]


def lda_fit(x: Float[Array, "n d"], y: Float[Array, " n"]) -> LDA:
    r"""Two-class LDA with a pooled covariance and equal priors.

    $w = S^+(m_+ - m_-)$ (pseudo-inverse, so a rank-deficient $S$, e.g. inputs on a
    2-D subspace of $\mathbb R^d$, is fine) and $b = -w\cdot(m_+ + m_-)/2$.
    For balanced classes, equivalent to scikit-learn's
    `LinearDiscriminantAnalysis(solver="lsqr")` up to scale (scikit-learn adds
    $\log(\pi_+/\pi_-)$ of the empirical priors to the intercept). $S^+$ comes
    from the SVD of the class-centred data, singular values
    below `max(n, d) eps` times the largest dropped: a feature whose share of the
    variance is $r$ is kept down to $r \approx (\max(n, d)\,\epsilon)^2$, in
    float32 with $n = 3200$ an availability ratio $\alpha_s/\alpha_c$ up to about
    1000 (float64: far beyond).

    Args:
      x: inputs, shape `(n, d)`.
      y: labels in $\{-1, +1\}$, shape `(n,)`.

    Returns:
      `LDA(w, b)`, in x's float dtype (integer x: the default float; float16 and
      bfloat16, which have no SVD: float32).

    Raises:
      ValueError: for mismatched shapes, fewer than 3 examples, a non-finite
        `x`, labels outside $\{-1, +1\}$ or only one class in `y` (values
        checked when concrete; under `jit` these give NaN).
    """
    x = as_float(x)
    if jnp.finfo(x.dtype).bits < 32:
        x = x.astype(jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"x: expected shape (n, d); got {x.shape}")
    if y.shape != x.shape[:1]:
        raise ValueError(
            f"y: expected shape ({x.shape[0]},) for x {x.shape}; got {y.shape}"
        )
    if x.shape[0] < 3:  # the pooled covariance divides by n - 2
        raise ValueError(f"x: expected at least 3 examples; got {x.shape[0]}")
    check_finite("x", x)
    _check_labels("y", y)
    return _lda_fit(x, y)


def _check_labels(name, y, *, both_classes: bool = True):
    """Labels in {-1, +1} (with both classes present) when concrete."""
    if not is_concrete(y):
        return
    v = np.asarray(y)
    if not np.all((v == 1) | (v == -1)):
        raise ValueError(
            f"{name}: expected labels in {{-1, +1}}; got values {np.unique(v)[:4]}"
        )
    if both_classes and not (np.any(v > 0) and np.any(v < 0)):
        raise ValueError(f"{name}: expected both classes -1 and +1; got one class")


@jax.jit
def _lda_fit(x, y):
    pos = (y > 0).astype(x.dtype)
    neg = 1 - pos
    m_pos = (pos @ x) / jnp.sum(pos)
    m_neg = (neg @ x) / jnp.sum(neg)
    centred = x - pos[:, None] * m_pos[None] - neg[:, None] * m_neg[None]
    # w = Sigma^+ (m_pos - m_neg), Sigma = C^T C / (n - 2), from the SVD C = U S V^T
    # of the centred data: the cutoff acts on S, not on S^2 (as lstsq on Sigma did),
    # so a direction of variance share r survives down to r ~ (n eps)^2, not d eps.
    # In float32 lstsq(Sigma) dropped the core feature once alpha_s / alpha_c
    # reached ~300 (share 1e-5) and LDA followed the shortcut alone.
    _, sv, vt = linalg.svd(centred)
    keep = sv > jnp.finfo(x.dtype).eps * max(x.shape) * sv[0]
    inv_sq = jnp.where(keep, 1 / jnp.where(keep, sv, 1) ** 2, 0)
    w = (x.shape[0] - 2) * (vt.T @ (inv_sq * (vt @ (m_pos - m_neg))))
    return LDA(w, -w @ (m_pos + m_neg) / 2)


def lda_decision(lda: LDA, x: Float[Array, "n d"]) -> Float[Array, " n"]:
    r"""Decision values $x\\cdot w + b$ of a fitted LDA, shape `(n,)`.

    Raises `ValueError` unless `x` is `(n, d)` with the fitted `d`.
    """
    d = jnp.shape(lda.w)[-1]
    if jnp.ndim(x) != 2 or jnp.shape(x)[1] != d:
        raise ValueError(
            f"x: expected shape (n, {d}) (the LDA's input dimension); got "
            f"{jnp.shape(x)}"
        )
    return x @ lda.w + lda.b


def shortcut_bias(
    decision_model: Float[ArrayLike, " m"],
    decision_optimal: Float[ArrayLike, " m"],
    z_grid: Float[ArrayLike, "m 2"],
) -> Float[Array, ""]:
    r"""Shortcut bias $R_{model} - R_{optimal}$ on the probe grid, in $[-2, 2]$.

    Args:
      decision_model: the model's real-valued outputs on the grid, shape `(m,)`.
      decision_optimal: the optimal (LDA) outputs on the grid, shape `(m,)`.
      z_grid: the grid's latents, shape `(m, 2)`.

    Returns:
      The bias, a scalar; NaN if a decision is NaN (under `jit`).

    Raises:
      ValueError: for mismatched shapes or non-finite decisions (checked when
        concrete).
    """
    r_model = _reliance(decision_model, z_grid, "decision_model")
    return r_model - _reliance(decision_optimal, z_grid, "decision_optimal")


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

    Raises:
      ValueError: for mismatched shapes, labels outside $\{-1, +1\}$, and as
        `gradient_flow_mse` and `reliance` do (negative or non-finite times, an
        indefinite kernel, non-finite decisions; values checked when concrete).

    References:
      Hermann et al. 2024, arXiv:2310.16228 (Sec. 5, NTK account); claim NTK-10.
    """
    m, n = jnp.shape(z_grid)[0], jnp.shape(k_train_train)[0]
    check_shape("k_grid_train", k_grid_train, (m, n), f"({m}, {n}) (grid, train)")
    # 0/1 labels gave a different, wrong bias; one class is a valid (if odd) flow
    _check_labels("y_train", y_train, both_classes=False)
    predict = gradient_flow_mse(k_train_train, y_train, lr=lr)
    out = predict(t, k_test_train=k_grid_train).test  # (t, m)
    r_opt = reliance(decision_optimal, z_grid)
    return jax.vmap(lambda d: reliance(d, z_grid))(out) - r_opt
