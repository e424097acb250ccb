r"""Per-mode ODEs of gradient flow, a fixed-step integrator, and crossing times.

With the aligned balanced init, mode $i$ has every encoder layer equal to $u(t)$ and
the head entry $v(t)$. Gradient flow (unit rate, per-layer parameters, loss
$\tfrac12E\|\cdot\|^2$, $\sigma^2 = \lambda/\rho$) gives

$$\text{JEPA: } \dot u = v u^{2L-1}(\lambda - \sigma^2 v),\quad
\dot v = u^{2L}(\lambda - \sigma^2 v);$$
$$\text{MAE: } \dot u = v u^{L-1}(\lambda - \sigma^2 v u^L),\quad
\dot v = u^{L}(\lambda - \sigma^2 v u^L).$$

Balancedness keeps $v = u$, and the end-to-end gain $\bar w = u^L$ obeys
$\dot{\bar w} = \kappa_L \lambda \bar w^{3-1/L}(1 - \bar w^{1/L}/\rho)$ (JEPA) and
$\dot{\bar w} = \kappa_L \lambda \bar w^{2-1/L}(1 - \bar w^{1+1/L}/\rho)$ (MAE), with
$\kappa_L = L$ in gradient-flow time and $\kappa_L = 1$ in the paper's time.

References:
  Littwin et al. 2024, arXiv:2407.03475, Thm 4.2 and eqs. (7)-(8) (numbering from a
  third-party restatement); claims LSSL-1, LSSL-4.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from jaxfeat._src.arrays import as_float
from jaxfeat._src.checks import (
    check_broadcast,
    check_choice,
    check_count,
    check_finite,
    check_int_at_least,
    check_positive,
    check_shape,
)
from jaxfeat._src.typing import Depth, Scalar

OBJECTIVES = ("jepa", "mae")
CONVENTIONS = ("gradient_flow", "paper")


def time_scale(depth: Depth | Scalar, convention: str) -> Array | float | int:
    r"""$\kappa_L$: $L$ for `"gradient_flow"` time, 1 for the paper's time.

    A duration in gradient-flow time times $L$ is the same duration in paper time:
    $t_{paper} = L\, t_{GF}$.
    """
    check_choice("convention", convention, CONVENTIONS)
    check_int_at_least("depth", depth, 1)
    return depth if convention == "gradient_flow" else 1.0


_BROADCAST = ("u", "v", "lam", "rho", "eps", "depth")


def _check_mode(**values) -> None:
    check_broadcast(**{k: v for k, v in values.items() if k in _BROADCAST})
    for name in ("lam", "rho", "eps", "t_max"):
        if name in values:
            check_positive(name, values[name])
    check_int_at_least("depth", values["depth"], 1)


def mode_rhs(
    u: Float[ArrayLike, "..."],
    v: Float[ArrayLike, "..."],
    lam: Float[ArrayLike, "..."],
    rho: Float[ArrayLike, "..."],
    depth: Depth,
    *,
    objective: str,
) -> tuple[Float[Array, "..."], Float[Array, "..."]]:
    r"""Per-layer gradient-flow velocities $(\dot u, \dot v)$ of one mode.

    Args:
      u: encoder-layer value per mode, any shape `(*k,)`.
      v: head value per mode, same shape.
      lam: cross-covariance $\lambda$, broadcastable.
      rho: regression coefficient $\rho$, broadcastable.
      depth: encoder depth $L$.
      objective: `"jepa"` or `"mae"`.

    Returns:
      `(du, dv)`, each of the broadcast shape.

    Raises:
      ValueError: for non-finite `u` or `v`, non-positive `lam` or `rho`, or
        `depth < 1` (values checked when concrete).
    """
    check_choice("objective", objective, OBJECTIVES)
    _check_mode(u=u, v=v, lam=lam, rho=rho, depth=depth)
    check_finite("u", u)
    check_finite("v", v)
    dtype = jnp.result_type(*(as_float(a) for a in (u, v, lam, rho)))
    u, v, lam, rho = (jnp.asarray(a, dtype) for a in (u, v, lam, rho))
    sigma2 = lam / rho
    if objective == "jepa":
        err = lam - sigma2 * v
        return v * u ** (2 * depth - 1) * err, u ** (2 * depth) * err
    err = lam - sigma2 * v * u**depth
    return v * u ** (depth - 1) * err, u**depth * err


def end_to_end_rhs(
    wbar: Float[ArrayLike, "..."],
    lam: Float[ArrayLike, "..."],
    rho: Float[ArrayLike, "..."],
    depth: Depth,
    *,
    objective: str,
    convention: str = "gradient_flow",
) -> Float[Array, "..."]:
    r"""Velocity $\dot{\bar w}$ of the end-to-end gain of one balanced mode.

    Args:
      wbar: end-to-end encoder gain $\bar w = u^L > 0$, any shape.
      lam: $\lambda$, broadcastable.
      rho: $\rho$, broadcastable.
      depth: encoder depth $L$.
      objective: `"jepa"` or `"mae"`.
      convention: `"gradient_flow"` ($\kappa_L = L$) or `"paper"` ($\kappa_L = 1$).

    Returns:
      $\dot{\bar w}$, the broadcast shape.

    Raises:
      ValueError: for negative or non-finite `wbar`, non-positive `lam` or `rho`,
        or `depth < 1` (values checked when concrete).

    References:
      Littwin et al. 2024, arXiv:2407.03475, eqs. (7)-(8); claim LSSL-1.
    """
    check_choice("objective", objective, OBJECTIVES)
    _check_mode(lam=lam, rho=rho, depth=depth)
    check_positive("wbar", wbar, strict=False)
    kappa = time_scale(depth, convention)
    dtype = jnp.result_type(*(as_float(a) for a in (wbar, lam, rho)))
    wbar, lam, rho = (jnp.asarray(a, dtype) for a in (wbar, lam, rho))
    root = wbar ** (1.0 / depth)  # the per-layer value u
    if objective == "jepa":
        return kappa * lam * wbar ** (3 - 1.0 / depth) * (1 - root / rho)
    return kappa * lam * wbar ** (2 - 1.0 / depth) * (1 - wbar * root / rho)


def integrate_rk4(
    rhs: Callable[[PyTree], PyTree],
    y0: PyTree,
    *,
    dt: Scalar,
    n_steps: int,
    log_every: int = 1,
) -> tuple[Float[Array, " t"], PyTree]:
    r"""Classical fixed-step Runge–Kutta 4 for an autonomous ODE $\dot y = f(y)$.

    Global error $O(dt^4)$. Runs in `lax.scan`; `dt` may be traced, so one compiled
    program serves a `vmap` over step sizes.

    Args:
      rhs: $f$, mapping a pytree to a pytree of the same structure.
      y0: initial state (pytree of arrays).
      dt: step size.
      n_steps: number of steps, a multiple of `log_every`.
      log_every: steps between logged states.

    Returns:
      `(t, ys)`: times, shape `(t,)`, and states stacked on a leading axis of length
      `n_steps // log_every + 1` (the initial state first).

    References:
      SciPy equivalent (adaptive): `scipy.integrate.solve_ivp(method="RK45")`.
    """
    check_count("n_steps", n_steps, 1)
    check_count("log_every", log_every, 1)
    y0 = jax.tree_util.tree_map(as_float, y0)  # Python numbers too
    if n_steps % log_every:
        raise ValueError(
            f"n_steps: expected a multiple of log_every={log_every}; got {n_steps}"
        )
    add = lambda a, b, c=1.0: jax.tree_util.tree_map(lambda x, y: x + c * y, a, b)

    def step(y, _):
        k1 = rhs(y)
        k2 = rhs(add(y, k1, 0.5 * dt))
        k3 = rhs(add(y, k2, 0.5 * dt))
        k4 = rhs(add(y, k3, dt))
        incr = jax.tree_util.tree_map(
            lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4
        )
        return add(y, incr, dt), None

    def block(y, _):
        y, _ = jax.lax.scan(step, y, length=log_every)
        return y, y

    _, ys = jax.lax.scan(block, y0, length=n_steps // log_every)
    ys = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
    leaf = jax.tree_util.tree_leaves(y0)[0]
    dtype = jnp.result_type(leaf.dtype, float)
    t = dt * log_every * jnp.arange(n_steps // log_every + 1, dtype=dtype)
    return t, ys


def first_crossing_time(
    t: Float[ArrayLike, " t"],
    w: Float[ArrayLike, " t"],
    threshold: Scalar,
    dwdt: Float[ArrayLike, " t"] | None = None,
) -> Float[Array, ""]:
    r"""First time a sampled increasing curve $w(t)$ reaches `threshold`.

    Between the bracketing samples the curve is interpolated linearly (error
    $O(\Delta t^2)$) or, given the derivative `dwdt`, by a cubic Hermite polynomial
    refined by Newton steps (error $O(\Delta t^4)$, matching RK4).

    Args:
      t: sample times, shape `(t,)`, increasing.
      w: samples, shape `(t,)`.
      threshold: level to reach.
      dwdt: optional derivative samples, shape `(t,)`.

    Returns:
      The crossing time, a scalar; `t[0]` if `w[0] >= threshold`; `+inf` if the
      curve never reaches the threshold (never NaN for finite inputs).

    Raises:
      ValueError: if `t`, `w` (and `dwdt`) are not 1-D of one length with at least
        two samples, or `threshold` is not finite (checked when concrete).
    """
    t = jnp.asarray(t)
    w = jnp.asarray(w)
    check_shape("t", t, (None,), "(t,)")
    if t.shape[0] < 2:
        raise ValueError(f"t: expected at least 2 samples; got {t.shape[0]}")
    check_shape("w", w, t.shape, f"{t.shape} (as t)")
    if dwdt is not None:
        check_shape("dwdt", dwdt, t.shape, f"{t.shape} (as t)")
    check_finite("threshold", threshold)
    above = w >= threshold
    k = jnp.argmax(above)  # first index at or above the threshold
    k = jnp.maximum(k, 1)
    t0, t1, w0, w1 = t[k - 1], t[k], w[k - 1], w[k]
    h = t1 - t0
    s = jnp.clip((threshold - w0) / jnp.where(w1 == w0, 1.0, w1 - w0), 0.0, 1.0)
    if dwdt is not None:
        dwdt = jnp.asarray(dwdt)
        m0, m1 = dwdt[k - 1] * h, dwdt[k] * h

        def hermite(s):
            h00 = 2 * s**3 - 3 * s**2 + 1
            h10 = s**3 - 2 * s**2 + s
            h01 = -2 * s**3 + 3 * s**2
            h11 = s**3 - s**2
            return h00 * w0 + h10 * m0 + h01 * w1 + h11 * m1

        grad = jax.grad(hermite)
        for _ in range(8):  # Newton from the linear guess; converges in 2-4 steps
            slope = grad(s)
            flat = slope == 0  # a stationary point: keep the current guess
            step = (hermite(s) - threshold) / jnp.where(flat, 1.0, slope)
            s = jnp.clip(jnp.where(flat, s, s - step), 0.0, 1.0)
    out = t0 + s * h
    out = jnp.where(above[0], t[0], out)
    return jnp.where(jnp.any(above), out, jnp.inf)


def integrate_mode(
    lam: Float[ArrayLike, "..."],
    rho: Float[ArrayLike, "..."],
    eps: Float[ArrayLike, "..."],
    depth: Depth,
    *,
    objective: str,
    t_max: Scalar,
    n_steps: int,
    log_every: int = 1,
    convention: str = "gradient_flow",
) -> tuple[Float[Array, " t"], Float[Array, "..."], Float[Array, "..."]]:
    r"""Integrates the end-to-end ODE of balanced modes from $\bar w(0) = \varepsilon$.

    RK4 with `n_steps` fixed steps of size `t_max / n_steps` (`integrate_rk4`).

    Args:
      lam: $\lambda$, any shape `(*k,)` (one independent mode per entry).
      rho: $\rho$, broadcastable to `lam`.
      eps: init scale $\varepsilon$, broadcastable.
      depth: encoder depth $L$ (may be traced).
      objective: `"jepa"` or `"mae"`.
      t_max: integration horizon.
      n_steps: RK4 steps, a multiple of `log_every`.
      log_every: steps between logged states.
      convention: `"gradient_flow"` or `"paper"` (time unit of `t_max` and output).

    Returns:
      `(t, wbar, dwbar)`: times `(t,)`, gains `(t, *k)` and their time derivatives
      `(t, *k)` (for Hermite crossing times, `first_crossing_time`).

    Raises:
      ValueError: for non-positive or non-finite `lam`, `rho`, `eps` or `t_max`, or
        `depth < 1` (values checked when concrete).
    """
    check_choice("objective", objective, OBJECTIVES)
    check_choice("convention", convention, CONVENTIONS)
    _check_mode(lam=lam, rho=rho, eps=eps, t_max=t_max, depth=depth)
    dtype = jnp.result_type(as_float(lam), as_float(rho), as_float(eps))
    lam, rho, eps = jnp.broadcast_arrays(
        *(jnp.asarray(v, dtype) for v in (lam, rho, eps))
    )
    rhs = lambda w: end_to_end_rhs(
        w, lam, rho, depth, objective=objective, convention=convention
    )
    t, w = integrate_rk4(
        rhs,
        eps,
        dt=jnp.asarray(t_max, dtype) / n_steps,
        n_steps=n_steps,
        log_every=log_every,
    )
    return t, w, jax.vmap(rhs)(w)
