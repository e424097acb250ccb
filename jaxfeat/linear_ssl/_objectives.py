r"""JEPA (self-distillation with stop-gradient) and MAE (reconstruction) objectives.

$$L_{JEPA} = \tfrac12 E\|V \bar W x - \mathrm{sg}(\bar W_{tgt}\, y)\|^2, \qquad
L_{MAE} = \tfrac12 E\|V \bar W x - y\|^2,$$

where the target encoder $\bar W_{tgt}$ is the online encoder itself (the paper's
setting) or an EMA of it. Population forms use only covariances; minibatch forms take
samples. The JEPA flow is not the gradient of any scalar: the stop-gradient makes it a
semi-gradient, so its loss need not decrease monotonically.

References:
  Littwin et al. 2024, arXiv:2407.03475, Sec. 3 (objectives); claim LSSL-13.
"""

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxfeat._src.checks import check_choice
from jaxfeat._src.typing import IntScalar
from jaxfeat.linear_ssl._data import Covariances
from jaxfeat.linear_ssl._models import Params, encoder_matrix, inputs_checked

OBJECTIVES = ("jepa", "mae")


def _target(params, depth, target_W):
    tgt = params if target_W is None else Params(W=target_W, V=params.V)
    return jax.lax.stop_gradient(encoder_matrix(tgt, depth))


@inputs_checked
@jax.jit
def jepa_population_loss(
    params: Params,
    cov: Covariances,
    *,
    depth: IntScalar | None = None,
    target_W: Float[Array, "l d d"] | None = None,
) -> Float[Array, ""]:
    r"""Population JEPA loss with a stop-gradient target encoder.

    $\tfrac12\mathrm{tr}(V\bar W\Sigma_{xx}\bar W^\top V^\top)
    - \mathrm{tr}(V\bar W\Sigma_{xy}T^\top) + \tfrac12\mathrm{tr}(T\Sigma_{yy}T^\top)$
    with $T = \mathrm{sg}(\bar W_{tgt})$. Its gradients are
    $\nabla_V = G\bar W^\top$, $\nabla_{\bar W} = V^\top G$ with
    $G = V\bar W\Sigma_{xx} - T\Sigma_{yx}$.

    Args:
      params: online encoder layers `W` `(l, d, d)` and predictor `V` `(d, d)`.
      cov: covariances, each `(d, d)`.
      depth: active encoder layers (default all).
      target_W: target encoder layers `(l, d, d)` (e.g. an EMA); default: the online
        layers, as in the paper.

    Returns:
      The loss, a scalar.
    """
    Wb = encoder_matrix(params, depth)
    T = _target(params, depth, target_W)
    P = params.V @ Wb
    return (
        0.5 * jnp.trace(P @ cov.xx @ P.T)
        - jnp.trace(P @ cov.yx.T @ T.T)
        + 0.5 * jnp.trace(T @ cov.yy @ T.T)
    )


@inputs_checked
@jax.jit
def mae_population_loss(
    params: Params, cov: Covariances, *, depth: IntScalar | None = None
) -> Float[Array, ""]:
    r"""Population MAE (reconstruction) loss $\tfrac12E\|V\bar Wx - y\|^2$.

    Args:
      params: encoder layers `W` `(l, d, d)` and decoder `V` `(d, d)`.
      cov: covariances, each `(d, d)`.
      depth: active encoder layers (default all).

    Returns:
      The loss, a scalar.
    """
    P = params.V @ encoder_matrix(params, depth)
    return (
        0.5 * jnp.trace(P @ cov.xx @ P.T)
        - jnp.trace(P @ cov.yx.T)
        + 0.5 * jnp.trace(cov.yy)
    )


@inputs_checked
@jax.jit
def jepa_loss(
    params: Params,
    x: Float[Array, "n d"],
    y: Float[Array, "n d"],
    *,
    depth: IntScalar | None = None,
    target_W: Float[Array, "l d d"] | None = None,
) -> Float[Array, ""]:
    r"""Minibatch JEPA loss, mean of $\tfrac12\|V\bar Wx - \mathrm{sg}(\bar W_t y)\|^2$.

    Equals `jepa_population_loss` at the batch's `empirical_covariances`.

    Args:
      params: online encoder and predictor.
      x: context views, shape `(n, d)`.
      y: target views, shape `(n, d)`.
      depth: active encoder layers (default all).
      target_W: target encoder layers; default the online ones.

    Returns:
      The mean loss, a scalar.
    """
    _check_pair(x, y)
    Wb = encoder_matrix(params, depth)
    T = _target(params, depth, target_W)
    resid = x @ (params.V @ Wb).T - y @ T.T
    return 0.5 * jnp.mean(jnp.sum(resid**2, axis=-1))


@inputs_checked
@jax.jit
def mae_loss(
    params: Params,
    x: Float[Array, "n d"],
    y: Float[Array, "n d"],
    *,
    depth: IntScalar | None = None,
) -> Float[Array, ""]:
    r"""Minibatch MAE loss $\frac{1}{2n}\sum_i\|V\bar Wx_i - y_i\|^2$.

    Args:
      params: encoder and decoder.
      x: context (visible) views, shape `(n, d)`.
      y: targets, shape `(n, d)`.
      depth: active encoder layers (default all).

    Returns:
      The mean loss, a scalar.
    """
    _check_pair(x, y)
    resid = x @ (params.V @ encoder_matrix(params, depth)).T - y
    return 0.5 * jnp.mean(jnp.sum(resid**2, axis=-1))


@inputs_checked
@functools.partial(jax.jit, static_argnames=("objective",))
def population_loss(
    params: Params,
    cov: Covariances,
    *,
    objective: str,
    depth: IntScalar | None = None,
    target_W: Float[Array, "l d d"] | None = None,
) -> Float[Array, ""]:
    """Dispatches to `jepa_population_loss` or `mae_population_loss`.

    Args:
      params: encoder and head.
      cov: covariances, each `(d, d)`.
      objective: `"jepa"` or `"mae"`.
      depth: active encoder layers (default all).
      target_W: JEPA target layers (ignored by MAE); default the online ones.

    Returns:
      The loss, a scalar.

    Raises:
      ValueError: for an unknown `objective`.
    """
    check_choice("objective", objective, OBJECTIVES)
    if objective == "jepa":
        return jepa_population_loss(params, cov, depth=depth, target_W=target_W)
    return mae_population_loss(params, cov, depth=depth)


def _check_pair(x, y):
    if x.ndim != 2:
        raise ValueError(f"x: expected a batch of shape (n, d); got {x.shape}")
    if y.shape != x.shape:
        raise ValueError(
            f"y: expected shape {x.shape} (that of x, which must be (n, d)); "
            f"got x {x.shape}, y {y.shape}"
        )


@inputs_checked
@functools.partial(jax.jit, static_argnames=("objective",))
def population_gradients(
    params: Params,
    cov: Covariances,
    *,
    objective: str,
    depth: IntScalar | None = None,
    target_W: Float[Array, "l d d"] | None = None,
) -> Params:
    r"""Closed-form (semi-)gradients of the population objectives.

    With $G = V\bar W\Sigma_{xx} - T\Sigma_{yx}$ ($T = \mathrm{sg}(\bar W_{tgt})$ for
    JEPA, $T = I$ for MAE): $\nabla_V = G\bar W^\top$ and
    $\nabla_{W^a} = (W^L\cdots W^{a+1})^\top V^\top G\,(W^{a-1}\cdots W^1)^\top$.
    Equal to `jax.grad(population_loss)` but skips the loss's forward pass; about
    $4L + 5$ matrix products. Inactive layers (index $\ge$ `depth`) get zero gradient.

    Args:
      params: encoder layers `W` `(l, d, d)` and head `V` `(d, d)`.
      cov: covariances, each `(d, d)`.
      objective: `"jepa"` or `"mae"`.
      depth: active encoder layers (default all).
      target_W: JEPA target layers; default the online ones.

    Returns:
      Gradients as a `Params` pytree.

    References:
      Littwin et al. 2024, arXiv:2407.03475, Sec. 3; spec section 1.2; claim LSSL-13.
    """
    check_choice("objective", objective, OBJECTIVES)
    W, V = params.W, params.V
    n = W.shape[0]
    active = jnp.ones((n,), bool) if depth is None else jnp.arange(n) < depth
    eye = jnp.eye(V.shape[0], dtype=V.dtype)
    below = [eye, jnp.where(active[0], W[0], eye)]  # W^{a-1} ... W^1 for layer a
    for a in range(1, n):
        below.append(jnp.where(active[a], W[a] @ below[-1], below[-1]))
    Wb = below[-1]
    if objective == "jepa":
        T = Wb if target_W is None else encoder_matrix(Params(target_W, V), depth)
        G = V @ Wb @ cov.xx - jax.lax.stop_gradient(T) @ cov.yx
    else:
        G = V @ Wb @ cov.xx - cov.yx
    # Every product below takes both operands untransposed (see `_transposed`).
    Wt, Vt, below_t = _transposed(W), _transposed(V), _transposed(jnp.stack(below))
    grad_Wb = Vt @ G
    above_t = None  # (W^L ... W^{a+1})^T for layer a; None is the identity
    grads = [None] * n
    for a in range(n - 1, -1, -1):
        g = grad_Wb if above_t is None else above_t @ grad_Wb
        g = g if a == 0 else g @ below_t[a]
        grads[a] = jnp.where(active[a], g, 0.0)
        if a:
            step = Wt[a] if above_t is None else Wt[a] @ above_t
            above_t = jnp.where(active[a], step, eye if above_t is None else above_t)
    return Params(W=jnp.stack(grads), V=G @ below_t[n])


def _transposed(x: Float[Array, "... d d"]) -> Float[Array, "... d d"]:
    """Swaps the last two axes and materialises the result.

    Left alone, XLA folds a transpose into the matrix product that consumes it; on
    CPU a batched small product with a transposed operand then falls back from the
    fast (YNNPACK) kernel to a loop about ten times slower, which dominated vmapped
    gradient descent. The barrier keeps the transpose as its own (cheap) copy.
    """
    return jax.lax.optimization_barrier(jnp.swapaxes(x, -1, -2))
