"""Model-agnostic baselines in JAX: permutation importance and gradient saliency.

Both take any `predict(x) -> outputs` of one example, so they score KANs, MLPs or any
differentiable model. Scores are normalised like the KAN selectors (non-negative,
summing to 1).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from jaxfeat._src import checks
from jaxfeat._src.arrays import as_float
from jaxfeat.kan._train import _TASKS, _check_not_empty, kan_loss


def _check_xy(x, y):
    checks.check_ndim("x", x, 2, "(N, d)")
    _check_not_empty(x)
    checks.check_finite("x", x)
    if y is not None and np.shape(y) != (np.shape(x)[0],):
        raise ValueError(f"y: expected shape ({np.shape(x)[0]},); got {np.shape(y)}")


def _normalize(s):
    return s / jnp.maximum(jnp.sum(s), 1e-12)


def permutation_importance(
    key: ArrayLike,
    predict: Callable,
    x: ArrayLike,
    y: ArrayLike,
    *,
    task: str,
    n_repeats: int = 5,
    normalize: bool = True,
) -> jax.Array:
    """Mean loss increase when one column of `x` is shuffled (Breiman 2001).

    Args:
      key: PRNG key for the shuffles.
      predict: `predict(x_i) -> (out,)` for one example.
      x: `(N, d)` evaluation inputs.
      y: `(N,)` labels or targets.
      task: `"classification"` (cross-entropy of logits) or `"regression"` (MSE).
      n_repeats: shuffles per feature.
      normalize: clip at 0 and normalise to sum 1 (zeros if no increase).

    Returns:
      `(d,)` scores; all `d * n_repeats` shuffles run in one `vmap`.
    """
    _check_xy(x, y)
    checks.check_choice("task", task, _TASKS)
    checks.check_count("n_repeats", n_repeats, 1)
    n, d = np.shape(x)
    x = jnp.asarray(x)  # NumPy input: `x.at[...]` below needs a JAX array
    f = jax.vmap(predict)
    base = kan_loss(f(x), y, task)

    def one(k, p):
        col = jax.random.permutation(k, x[:, p])
        return kan_loss(f(x.at[:, p].set(col)), y, task)

    keys = jax.random.split(key, (d, n_repeats))  # typed or legacy uint32 keys
    losses = jax.lax.map(
        lambda args: jax.vmap(one, (0, None))(args[0], args[1]),
        (keys, jnp.arange(d)),
    )
    delta = jnp.mean(losses, axis=1) - base
    if not normalize:
        return delta
    delta = jnp.maximum(delta, 0.0)
    tot = jnp.sum(delta)
    return jnp.where(tot > 0, delta / jnp.where(tot > 0, tot, 1.0), 0.0)


def gradient_saliency(predict: Callable, x: ArrayLike) -> jax.Array:
    """Mean absolute input gradient, `mean_{n,c} |d f_c(x_n) / d x_p|`, normalised.

    Args:
      predict: `predict(x_i) -> (out,)` for one example.
      x: `(N, d)` inputs.

    Returns:
      `(d,)` scores summing to 1.

    Raises:
      ValueError: for `x` not `(N, d)` with N >= 1, or a concrete `x` with NaN or
        infinity.
    """
    _check_xy(x, None)
    x = as_float(x)  # integer samples: the input gradient needs floats
    jac = jax.vmap(jax.jacrev(lambda xi: jnp.atleast_1d(predict(xi))))(x)
    return _normalize(jnp.mean(jnp.abs(jac), axis=(0, 1)))
