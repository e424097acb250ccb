"""Adapters from flax modules to the `f(params, x)` contract (split/merge).

flax is imported only here, and only when an adapter is called.
"""

from collections.abc import Callable


def from_nnx(model) -> tuple[Callable, object]:
    """`(apply_fn, params)` for a flax NNX module, via `nnx.split` / `nnx.merge`.

    `apply_fn(params, x)` evaluates the module on one example `x` (it adds and removes
    a batch axis), so `jax.vmap` batches it and the empirical NTK can differentiate
    with respect to `params` (the module's `nnx.Param` state). Other state (batch
    statistics, RNG counters) is held fixed.

    Args:
      model: an `nnx.Module` taking a batch `(n, ...)`.

    Returns:
      `(apply_fn, params)`.
    """
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply_fn(p, x):
        return nnx.merge(graphdef, p, rest)(x[None])[0]

    return apply_fn, params


def from_linen(module, variables) -> tuple[Callable, object]:
    """`(apply_fn, params)` for a flax linen module and its variables.

    Args:
      module: an `nn.Module` taking a batch `(n, ...)`.
      variables: the result of `module.init(...)`; its `"params"` collection is
        differentiated, the other collections are held fixed.

    Returns:
      `(apply_fn, params)` with `apply_fn(params, x)` for one example `x`.
    """
    rest = {k: v for k, v in variables.items() if k != "params"}

    def apply_fn(p, x):
        return module.apply({"params": p, **rest}, x[None])[0]

    return apply_fn, variables["params"]
