r"""The proximal Bregman response function (PBRF) and its numerical minimiser.

$$\theta^s(\epsilon) = \arg\min_\theta \frac1N \sum_i D_{L_{y_i}}(h(\theta, x_i),
h(\theta^s, x_i)) + \epsilon L(z_m, \theta) + \frac\lambda2\|\theta - \theta^s\|^2,$$
with the output-space Bregman divergence $D_{L_y}(\hat y, \hat y^s) = L(\hat y, y) -
L(\hat y^s, y) - \nabla_{\hat y} L(\hat y^s, y)^\top(\hat y - \hat y^s)$. Its
derivative at $\epsilon = 0$ is $-(G + \lambda I)^{-1}\nabla_\theta L(z_m,
\theta^s)$ with $G$ the GGN of the mean loss: damped-GGN influence is the PBRF's
exact first-order response.
"""

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float

from jaxfeat._src import linalg
from jaxfeat._src.checks import (
    check_choice,
    check_count,
    check_finite,
    check_positive,
    check_tree_finite,
)
from jaxfeat._src.typing import Scalar
from jaxfeat.influence._config import LOSSES
from jaxfeat.influence._grads import Model, check_targets, model_apply, output_loss


def _validate(params_s, x, y, x_z, y_z, eps, damping, model, loss, strict):
    """Checks shared by `pbrf_objective` and `pbrf_response` (values when concrete)."""
    check_choice("loss", loss, LOSSES)
    check_tree_finite("params_s", params_s)
    check_positive("damping", damping, strict=strict)
    check_finite("eps", eps)
    if jnp.ndim(eps) != 0:
        raise ValueError(f"eps: expected a scalar; got shape {jnp.shape(eps)}")
    if jnp.ndim(x) < 1 or jnp.shape(x_z) != jnp.shape(x)[1:]:
        raise ValueError(
            f"x_z: expected one example of shape {jnp.shape(x)[1:]} (x.shape[1:]); "
            f"got {jnp.shape(x_z)}"
        )
    check_finite("x", x)
    check_finite("x_z", x_z)
    check_targets("x", x, "y", y, model=model, params=params_s, loss=loss)
    check_targets(
        "x_z",
        x_z[None],
        "y_z",
        jnp.asarray(y_z)[None],
        model=model,
        params=params_s,
        loss=loss,
    )


def _objective(params, params_s, x, y, x_z, y_z, eps, damping, model, loss):
    def bregman(xi, yi):
        f = model_apply(model, params, xi)
        fs = model_apply(model, params_s, xi)
        gs = jax.grad(output_loss)(fs, yi, loss)
        # full inner product: a sequence output (T, k) is not a matrix product
        lin = jnp.vdot(gs, f - fs)
        return output_loss(f, yi, loss) - output_loss(fs, yi, loss) - lin

    data = jnp.mean(jax.vmap(bregman)(x, y))
    up = eps * output_loss(model_apply(model, params, x_z), y_z, loss)
    diff, _ = ravel_pytree(jax.tree_util.tree_map(lambda a, b: a - b, params, params_s))
    return data + up + 0.5 * damping * jnp.sum(diff**2)


_objective_jit = jax.jit(_objective, static_argnames=("model", "loss"))


def pbrf_objective(
    params,
    params_s,
    x: ArrayLike,
    y: ArrayLike,
    x_z: ArrayLike,
    y_z: ArrayLike,
    eps: Scalar,
    *,
    model: Model,
    loss: str,
    damping: Scalar,
) -> Float[Array, ""]:
    r"""PBRF objective of Bae et al. (2022) at `params`.

    Args:
      params: $\theta$.
      params_s: the trained parameters $\theta^s$ (same structure).
      x: training inputs `(n, ...)`.
      y: training targets `(n, ...)`.
      x_z: the up-weighted example's input (one example).
      y_z: its target.
      eps: up-weighting $\epsilon$.
      model: `apply_fn(params, x)` or an `ntk.MLPConfig`.
      loss: `"cross_entropy"` or `"mse"`.
      damping: proximity weight $\lambda \ge 0$.

    Returns:
      The objective, a scalar.

    Raises:
      ValueError: for an unknown `loss`, `params` unlike `params_s`, `x_z` not
        of shape `x.shape[1:]`, targets that do not fit the model output (as in
        `fit_curvature`), a non-scalar `eps`, or (concrete) negative or
        non-finite `damping`, non-finite `eps`, `x`, `x_z`, `params` or
        `params_s`.
      TypeError: for non-integer cross-entropy labels.

    References:
      Bae et al. 2022, arXiv:2209.05364, eq. (9); Grosse et al. 2023,
      arXiv:2308.03296, eq. (8).
    """
    x, y, x_z, y_z = (jnp.asarray(a) for a in (x, y, x_z, y_z))
    _validate(params_s, x, y, x_z, y_z, eps, damping, model, loss, strict=False)
    check_tree_finite("params", params)
    p_def, s_def = (jax.tree_util.tree_structure(t) for t in (params, params_s))
    p_shapes, s_shapes = (
        [jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(t)]
        for t in (params, params_s)
    )
    if p_def != s_def or p_shapes != s_shapes:
        raise ValueError(
            f"params: expected the structure and leaf shapes of params_s "
            f"({s_def}, {s_shapes}); got {p_def}, {p_shapes}"
        )
    return _objective_jit(
        params,
        params_s,
        jnp.asarray(x),
        jnp.asarray(y),
        jnp.asarray(x_z),
        jnp.asarray(y_z),
        eps,
        damping,
        model,
        loss,
    )


def _response(params_s, x, y, x_z, y_z, eps, damping, model, loss, n_steps):
    flat_s, unravel = ravel_pytree(params_s)
    obj = lambda t: _objective(
        unravel(t), params_s, x, y, x_z, y_z, eps, damping, model, loss
    )

    def newton(_, t):
        g = jax.grad(obj)(t)
        h = jax.hessian(obj)(t)
        return t - linalg.solve(h, g)

    return unravel(lax.fori_loop(0, n_steps, newton, flat_s))


_response_jit = jax.jit(_response, static_argnames=("model", "loss", "n_steps"))


def pbrf_response(
    params_s,
    x: ArrayLike,
    y: ArrayLike,
    x_z: ArrayLike,
    y_z: ArrayLike,
    eps: Scalar,
    *,
    model: Model,
    loss: str,
    damping: Scalar,
    n_steps: int = 10,
):
    r"""Minimiser $\theta^s(\epsilon)$ of the PBRF, by Newton's method from $\theta^s$.

    Each step solves with the dense Hessian of the objective (`ravel_pytree`
    order), so this is for small models; with $\lambda > 0$ and small $|\epsilon|$
    the objective is locally strongly convex and Newton converges quadratically.
    Finite differences $(f(\theta^s(\epsilon)) - f(\theta^s(-\epsilon)))/2\epsilon$
    of a query loss then approximate $-\mathrm{score}$ (the PBRF validation of
    Grosse et al., §5.1).

    Args:
      params_s: trained parameters $\theta^s$.
      x: training inputs `(n, ...)`.
      y: training targets `(n, ...)`.
      x_z: the up-weighted example's input.
      y_z: its target.
      eps: up-weighting $\epsilon$.
      model: `apply_fn(params, x)` or an `ntk.MLPConfig`.
      loss: `"cross_entropy"` or `"mse"`.
      damping: proximity weight $\lambda > 0$.
      n_steps: Newton steps (fixed count; no tolerance test).

    Returns:
      Parameters like `params_s`.

    Raises:
      ValueError: for an unknown `loss`, `n_steps < 1`, a concrete `damping`
        that is not finite and $> 0$, and the input checks of `pbrf_objective`.
      TypeError: for non-integer cross-entropy labels.

    References:
      Bae et al. 2022, arXiv:2209.05364; Grosse et al. 2023, arXiv:2308.03296.
    """
    check_count("n_steps", n_steps, 1)
    x, y, x_z, y_z = (jnp.asarray(a) for a in (x, y, x_z, y_z))
    _validate(params_s, x, y, x_z, y_z, eps, damping, model, loss, strict=True)
    return _response_jit(
        params_s,
        jnp.asarray(x),
        jnp.asarray(y),
        jnp.asarray(x_z),
        jnp.asarray(y_z),
        eps,
        damping,
        model,
        loss,
        n_steps,
    )
