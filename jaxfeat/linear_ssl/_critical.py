r"""Fixed points and critical times of one balanced, aligned mode.

The critical time $t^*$ is the first time the end-to-end gain $\bar w(t)$ reaches a
fraction $p$ of its limit $\bar w^\infty$. Writing $a = \varepsilon^{1/L}$ (the
per-layer init) and $u_p$ the per-layer value at the threshold, separation of
variables in the per-layer ODE gives, in gradient-flow time,

$$t^*_{JEPA} = \frac1\lambda\int_a^{u_p}\frac{ds}{s^{2L}(1-s/\rho)},\qquad
t^*_{MAE} = \frac1\lambda\int_a^{u_p}\frac{ds}{s^{L}(1-s^{L+1}/\rho)}.$$

`method="closed_form"` evaluates both exactly by partial fractions (JEPA: a Laurent
sum plus a logarithm; MAE: a power term plus a sum over the $(L+1)$-th roots of
$\rho$). `method="quadrature"` integrates in the logit of the saturation variable,
where both integrands are smooth, by Gauss–Legendre.

References:
  Littwin et al. 2024, arXiv:2407.03475, Thm 4.5 (critical-time Laurent sum; number
  from a third-party restatement), Cor. 4.3 (fixed point $\rho^L$); claims LSSL-3,
  LSSL-4, LSSL-5, LSSL-6.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from jaxfeat._src.arrays import as_float
from jaxfeat._src.checks import (
    check_broadcast,
    check_choice,
    check_count,
    check_in_range,
    check_int_at_least,
    check_ndim,
    check_positive,
    is_concrete,
)
from jaxfeat._src.typing import Depth, Scalar
from jaxfeat.linear_ssl._models import check_depth
from jaxfeat.linear_ssl._ode import CONVENTIONS, OBJECTIVES

METHODS = ("closed_form", "quadrature")


class FixedPoint(NamedTuple):
    r"""Non-trivial fixed point of one balanced mode.

    Attributes:
      wbar: end-to-end encoder gain $\bar w^\infty$.
      v: head entry $v^\infty$.
      u: per-layer encoder value $u^\infty$.
    """

    wbar: Float[Array, "..."]
    v: Float[Array, "..."]
    u: Float[Array, "..."]


def fixed_point(
    rho: Float[ArrayLike, "..."], depth: Depth, *, objective: str
) -> FixedPoint:
    r"""Stable fixed point of gradient flow for one mode.

    JEPA: $\bar w^\infty = \rho^L$, $v^\infty = u^\infty = \rho$ (the predictor is the
    regression $\Sigma_{yx}\Sigma_{xx}^{-1}$). MAE: $\bar w^\infty = \rho^{L/(L+1)}$,
    $v^\infty = u^\infty = \rho^{1/(L+1)}$, so $v^\infty\bar w^\infty = \rho$.

    Args:
      rho: regression coefficients, any shape, positive.
      depth: encoder depth $L \ge 1$ (may be traced).
      objective: `"jepa"` or `"mae"`.

    Returns:
      `FixedPoint` with arrays of the broadcast shape.

    References:
      Littwin et al. 2024, arXiv:2407.03475, Cor. 4.3; claim LSSL-3.
    """
    check_choice("objective", objective, OBJECTIVES)
    rho = as_float(rho)
    check_positive("rho", rho)
    check_int_at_least("depth", depth, 1)
    L = jnp.asarray(depth, rho.dtype)
    u = rho if objective == "jepa" else rho ** (1 / (L + 1))
    u = jnp.broadcast_to(u, jnp.broadcast_shapes(u.shape, L.shape))
    return FixedPoint(u**L, u, u)


def _static_max_depth(depth, max_depth):
    if max_depth is not None:
        check_int_at_least("max_depth", max_depth, 1)
        return max_depth
    if isinstance(depth, int):
        return depth
    if is_concrete(depth):
        return int(np.max(np.asarray(depth)))
    raise TypeError(
        "max_depth: required when depth is traced (e.g. under vmap); got depth "
        f"{depth!r}"
    )


def _validate(lam, rho, eps, depth, p, max_depth, objective, convention, method):
    check_choice("objective", objective, OBJECTIVES)
    check_choice("convention", convention, CONVENTIONS)
    check_choice("method", method, METHODS)
    check_broadcast(lam=lam, rho=rho, eps=eps, depth=depth, p=p)
    check_positive("lam", lam)
    check_positive("rho", rho)
    check_positive("eps", eps)
    check_int_at_least("depth", depth, 1)
    check_in_range("p", p, 0.0, 1.0)
    n = _static_max_depth(depth, max_depth)
    check_depth(depth, n, bound="max_depth")
    if is_concrete((rho, eps, depth, p)):
        L = np.asarray(depth, dtype=np.float64)
        r = np.asarray(rho, dtype=np.float64)
        w_inf = r**L if objective == "jepa" else r ** (L / (L + 1))
        thresh = np.asarray(p, dtype=np.float64) * w_inf
        e, thresh = np.broadcast_arrays(np.asarray(eps, dtype=np.float64), thresh)
        if np.any(e >= thresh):
            i = np.unravel_index(np.argmax(e - thresh), thresh.shape)
            raise ValueError(
                f"eps: the mode starts at or past the threshold p * wbar_inf "
                f"({'rho^L' if objective == 'jepa' else 'rho^(L/(L+1))'}), so it has "
                f"no critical time: expected eps < {thresh[i]:.4g}, got {e[i]:.4g}"
            )
    return n


def _row(v, ndim):
    """`v` (shape `(K,)`) with `ndim` leading unit axes: explicit rank promotion."""
    return v.reshape((1,) * ndim + v.shape)


def _jepa_closed_form(lam, rho, a, u, L, n_max):
    k = _row(jnp.arange(1, 2 * n_max, dtype=a.dtype), L.ndim)  # 1 .. 2*max_depth - 1
    mask = k <= 2 * L[..., None] - 1
    # Guard masked powers: the masked terms are dropped by `where`, and keeping their
    # exponents at k = 1 stops them from overflowing to inf (whose gradient is NaN).
    k_eff = jnp.where(mask, k, 1.0)
    rho_pow = rho[..., None] ** (2 * L[..., None] - 1 - k_eff)
    terms = (a[..., None] ** -k_eff - u[..., None] ** -k_eff) / (k_eff * rho_pow)
    series = jnp.sum(jnp.where(mask, terms, 0.0), axis=-1)
    log_term = rho ** (1 - 2 * L) * (jnp.log(u / a) + jnp.log((rho - a) / (rho - u)))
    return (series + log_term) / lam


def _mae_closed_form(lam, rho, a, u, L, n_max):
    # Power part of 1/(s^L (1 - s^{L+1}/rho)) = s^{-L} + s / (rho - s^{L+1}).
    one = L == 1
    L_safe = jnp.where(one, 2.0, L)
    power = jnp.where(
        one, jnp.log(u / a), (a ** (1 - L_safe) - u ** (1 - L_safe)) / (L_safe - 1)
    )
    # Regular part: s/(rho - s^m) = sum_j A_j / (s - r_j), r_j = c w^j, m = L + 1,
    # A_j = -r_j^2/(m rho). For u < c, (u - r_j)/(a - r_j) never crosses the branch
    # cut of the principal log (both points lie in one half-plane), so the log of the
    # ratio is exact.
    cdtype = jnp.result_type(a.dtype, jnp.complex64)
    m = (L + 1)[..., None]
    j = _row(jnp.arange(n_max + 1, dtype=a.dtype), L.ndim)
    mask = j < m
    c = (rho ** (1 / (L + 1)))[..., None]
    r = c * jnp.exp(2j * jnp.pi * j / m).astype(cdtype)
    A = -(r**2) / (m * rho[..., None])
    logs = jnp.log((u[..., None] - r) / (a[..., None] - r))
    regular = jnp.sum(jnp.where(mask, (A * logs).real, 0.0), axis=-1)
    return (power + regular) / lam


def _quadrature(lam, rho, a, u, L, objective, n_nodes):
    # Substitute q = s/rho (JEPA) or q = s^{L+1}/rho (MAE) and y = logit(q): the
    # integrand becomes rho^{1-2L} (1 + e^{-y})^{2L-1} (JEPA) or s^{1-L}/(L+1) (MAE),
    # smooth and free of the saturation pole, so Gauss-Legendre converges fast.
    x, wts = np.polynomial.legendre.leggauss(n_nodes)
    x, wts = (
        _row(jnp.asarray(x, a.dtype), L.ndim),
        _row(jnp.asarray(wts, a.dtype), L.ndim),
    )
    m = jnp.ones_like(L) if objective == "jepa" else L + 1
    logit = lambda s: jnp.log(s**m / rho) - jnp.log1p(-(s**m) / rho)
    ya, yu = logit(a), logit(u)
    half, mid = 0.5 * (yu - ya), 0.5 * (yu + ya)
    y = mid[..., None] + half[..., None] * x
    log_q = -jnp.logaddexp(0.0, -y)  # log sigmoid(y)
    log_s = (jnp.log(rho)[..., None] + log_q) / m[..., None]
    if objective == "jepa":
        f = jnp.exp((1 - 2 * L[..., None]) * log_s)
    else:
        f = jnp.exp((1 - L[..., None]) * log_s) / m[..., None]
    return half * jnp.sum(wts * f, axis=-1) / lam


def critical_time(
    lam: Float[ArrayLike, "..."],
    rho: Float[ArrayLike, "..."],
    eps: Float[ArrayLike, "..."],
    depth: Depth,
    *,
    objective: str,
    p: Scalar | Float[ArrayLike, "..."] = 0.5,
    convention: str = "gradient_flow",
    method: str = "closed_form",
    max_depth: int | None = None,
    n_nodes: int = 96,
    lr: Scalar | None = None,
) -> Float[Array, "..."]:
    r"""Time for a mode's gain $\bar w$ to reach $p\,\bar w^\infty$ from $\varepsilon$.

    Every argument broadcasts, so a whole $(\lambda, \rho, \varepsilon, L, p)$ grid is
    one call; with an array `p` it traces the full learning curve
    $t \mapsto \bar w = p\,\bar w^\infty$ exactly.

    Args:
      lam: $\lambda > 0$.
      rho: $\rho > 0$.
      eps: init scale $\varepsilon$ of $\bar w$, below $p\,\bar w^\infty$.
      depth: encoder depth $L \ge 1$ (int or integer array; traced needs `max_depth`).
      objective: `"jepa"` or `"mae"`.
      p: fraction of the asymptote, in $(0, 1)$.
      convention: `"gradient_flow"` ($t_{GF} = \eta\cdot$steps) or `"paper"`
        ($t_{paper} = L\,t_{GF}$).
      method: `"closed_form"` (exact partial fractions) or `"quadrature"`
        (Gauss–Legendre in the logit variable, `n_nodes` nodes).
      max_depth: static bound on `depth` (sets the length of the partial-fraction
        sums); required when `depth` is traced.
      n_nodes: quadrature nodes (`method="quadrature"` only).
      lr: if given, the critical time of gradient descent with this learning rate
        (time $\eta\cdot$steps) to first order: gradient descent is forward Euler on
        the per-layer flow $\dot u = f(u)$, whose modified equation
        $\dot u = f - \tfrac\eta2 f'f$ delays the crossing by
        $\tfrac\eta2\ln(f(u_p)/f(a)) + O(\eta^2)$ (claim LSSL-14).

    Returns:
      Critical times, the broadcast shape, in the chosen time convention.

    Raises:
      ValueError: for `lam`, `rho` or `eps` not positive or NaN, `depth < 1`, `p`
        outside $(0, 1)$, `eps` $\ge p\,\bar w^\infty$ (the mode starts past the
        threshold, or decays), an unknown `objective`, `convention` or `method`,
        or shapes of `lam`, `rho`, `eps`, `depth`, `p` that do not broadcast.
        Values are checked only when concrete.

    References:
      Littwin et al. 2024, arXiv:2407.03475, Thm 4.5; claims LSSL-4 (JEPA), LSSL-6
      (MAE). SciPy equivalent: `scipy.integrate.quad` of the integrals above.
    """
    n_max = _validate(lam, rho, eps, depth, p, max_depth, objective, convention, method)
    check_count("n_nodes", n_nodes, 1)
    dtype = jnp.result_type(as_float(lam), as_float(rho), as_float(eps), as_float(p))
    if lr is not None:
        check_broadcast(lam=lam, rho=rho, eps=eps, depth=depth, p=p, lr=lr)
        check_positive("lr", lr)
        lr = jnp.asarray(lr, dtype)
    return _critical_time_jit(
        *(jnp.asarray(v, dtype) for v in (lam, rho, eps, p, depth)),
        lr,
        objective=objective,
        convention=convention,
        method=method,
        n_max=_round_up(n_max),
        n_nodes=n_nodes,
    )


def _round_up(n: int, multiple: int = 8) -> int:
    # Sums are masked beyond the depth, so any bound >= depth gives the same value;
    # rounding up lets one compiled program serve every depth up to 8.
    return -(-n // multiple) * multiple


def _per_layer_speed(u, lam, rho, L, objective):
    # f(u) of the balanced per-layer flow du/dt = f(u).
    if objective == "jepa":
        return lam * u ** (2 * L) * (1 - u / rho)
    return lam * u**L * (1 - u ** (L + 1) / rho)


def _critical_time_impl(
    lam, rho, eps, p, L, lr, *, objective, convention, method, n_max, n_nodes
):
    lam, rho, eps, p, L = jnp.broadcast_arrays(lam, rho, eps, p, L)
    a = eps ** (1 / L)
    if objective == "jepa":
        u = p ** (1 / L) * rho
    else:
        u = p ** (1 / L) * rho ** (1 / (L + 1))
    if method == "quadrature":
        t = _quadrature(lam, rho, a, u, L, objective, n_nodes)
    elif objective == "jepa":
        t = _jepa_closed_form(lam, rho, a, u, L, n_max)
    else:
        t = _mae_closed_form(lam, rho, a, u, L, n_max)
    if lr is not None:
        f_u = _per_layer_speed(u, lam, rho, L, objective)
        f_a = _per_layer_speed(a, lam, rho, L, objective)
        t = t + 0.5 * lr * jnp.log(f_u / f_a)
    # t is in gradient-flow time; the paper's time runs L times longer.
    return t * L if convention == "paper" else t


_critical_time_jit = jax.jit(
    _critical_time_impl,
    static_argnames=("objective", "convention", "method", "n_max", "n_nodes"),
)


def critical_time_laurent(
    lam: Float[ArrayLike, "..."],
    rho: Float[ArrayLike, "..."],
    eps: Float[ArrayLike, "..."],
    depth: Depth,
    *,
    convention: str = "gradient_flow",
    max_depth: int | None = None,
) -> Float[Array, "..."]:
    r"""JEPA critical time by the paper's Laurent sum (leading terms only).

    $t^*_{paper} \approx \frac1\lambda\sum_{n=1}^{2L-1}
    \frac{L}{n\,\rho^{2L-n-1}\varepsilon^{n/L}}$. Its most divergent term,
    $n = 2L-1$, does not depend on $\rho$; the $2L-2$ others carry
    $\rho^{-(2L-1-n)}$, which is how depth amplifies the $\rho$-dependence.

    Args:
      lam: $\lambda > 0$.
      rho: $\rho > 0$.
      eps: init scale $\varepsilon > 0$.
      depth: encoder depth $L \ge 1$.
      convention: `"gradient_flow"` or `"paper"` (see `critical_time`).
      max_depth: static bound on `depth`; required when `depth` is traced.

    Returns:
      The approximate critical time, the broadcast shape.

    Raises:
      ValueError: as `critical_time`.

    References:
      Littwin et al. 2024, arXiv:2407.03475, Thm 4.5; claim LSSL-5.
    """
    check_choice("convention", convention, CONVENTIONS)
    check_broadcast(lam=lam, rho=rho, eps=eps, depth=depth)
    check_positive("lam", lam)
    check_positive("rho", rho)
    check_positive("eps", eps)
    check_int_at_least("depth", depth, 1)
    n_max = _static_max_depth(depth, max_depth)
    check_depth(depth, n_max, bound="max_depth")
    dtype = jnp.result_type(as_float(lam), as_float(rho), as_float(eps))
    return _laurent_jit(
        *(jnp.asarray(v, dtype) for v in (lam, rho, eps, depth)),
        convention=convention,
        n_max=_round_up(n_max),
    )


def _laurent_impl(lam, rho, eps, L, *, convention, n_max):
    lam, rho, eps, L = jnp.broadcast_arrays(lam, rho, eps, L)
    n = _row(jnp.arange(1, 2 * n_max, dtype=lam.dtype), L.ndim)
    mask = n <= 2 * L[..., None] - 1
    n_eff = jnp.where(mask, n, 1.0)
    terms = L[..., None] / (
        n_eff
        * rho[..., None] ** (2 * L[..., None] - n_eff - 1)
        * eps[..., None] ** (n_eff / L[..., None])
    )
    t_paper = jnp.sum(jnp.where(mask, terms, 0.0), axis=-1) / lam
    # The sum is in the paper's time; gradient-flow time is L times shorter.
    return t_paper if convention == "paper" else t_paper / L


_laurent_jit = jax.jit(_laurent_impl, static_argnames=("convention", "n_max"))


def learning_curve(
    lam: Float[ArrayLike, "..."],
    rho: Float[ArrayLike, "..."],
    eps: Scalar,
    depth: int,
    *,
    objective: str,
    n_points: int = 256,
    p_max: float = 0.995,
    convention: str = "gradient_flow",
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    r"""Exact learning curves $\bar w(t)/\bar w^\infty$ of balanced modes.

    The closed-form critical time inverts the trajectory: evaluating it at fractions
    $p$ from just above $\varepsilon/\bar w^\infty$ to `p_max` traces each curve with
    no ODE integration.

    Args:
      lam: $\lambda$ per mode, shape `(*k,)`.
      rho: $\rho$ per mode, broadcastable.
      eps: init scale $\varepsilon$.
      depth: encoder depth $L$.
      objective: `"jepa"` or `"mae"`.
      n_points: points per curve.
      p_max: last fraction of the asymptote, in $(0, 1)$.
      convention: `"gradient_flow"` or `"paper"`.

    Returns:
      `(t, frac)`, each of shape `(*k, n_points)`: times and the fractions
      $\bar w(t)/\bar w^\infty$ reached at them (geometric in $p$ near the start).

    Raises:
      ValueError: as `critical_time`; also for a non-scalar `eps`, or `eps` not
        below `p_max` times the asymptote.
    """
    check_in_range("p_max", p_max, 0.0, 1.0)
    check_count("n_points", n_points, 2)
    check_broadcast(lam=lam, rho=rho)
    check_ndim("eps", eps, 0, "() (a scalar)")
    lam, rho = jnp.broadcast_arrays(as_float(lam), as_float(rho))
    w_inf = fixed_point(rho, depth, objective=objective).wbar
    p0 = eps / w_inf
    if is_concrete(p0) and np.any(np.asarray(p0) >= p_max):
        raise ValueError(f"eps: expected eps < p_max * wbar_inf; got eps={eps!r}")
    s = jnp.linspace(0.0, 1.0, n_points, dtype=lam.dtype)
    # Geometric from p0 (1 + 1e-6) to p_max: resolves both the slow start and the rise.
    lo = jnp.log(p0 * (1 + 1e-6))[..., None]
    frac = jnp.exp(lo + (jnp.log(p_max) - lo) * _row(s, lam.ndim))
    t = critical_time(
        lam[..., None],
        rho[..., None],
        eps,
        depth,
        objective=objective,
        p=frac,
        convention=convention,
    )
    return t, frac
