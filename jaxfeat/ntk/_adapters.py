"""Adapters from flax modules to the `f(params, x)` contract (split/merge).

flax is imported only here, and only when an adapter is called.
"""

from collections.abc import Callable


def from_nnx(model) -> tuple[Callable, object]:
    """`(apply_fn, params)` for a flax NNX module, via `nnx.split` / `nnx.merge`.

    `apply_fn(params, x)` evaluates the module on one example `x` (it adds and removes
    a batch axis), so `jax.vmap` batches it and the empirical NTK can differentiate
    with respect to `params` (the module's `nnx.Param` state). Other state (batch
    statistics, RNG counters) is held fixed, so the module must be in evaluation
    mode (`model.eval()`).

    Args:
      model: an `nnx.Module` taking a batch `(n, ...)`, in evaluation mode.

    Returns:
      `(apply_fn, params)`.

    Raises:
      ValueError: for a module in training mode: a `BatchNorm` not using its
        running averages would normalise each single example by its own
        statistics (constant outputs) and a `Dropout` would need RNG state.
    """
    from flax import nnx

    _check_eval_mode(nnx, model)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply_fn(p, x):
        return nnx.merge(graphdef, p, rest)(x[None])[0]

    return apply_fn, params


def _check_eval_mode(nnx, model) -> None:
    iter_modules = getattr(nnx, "iter_modules", None)
    modules = iter_modules(model) if iter_modules else model.iter_modules()
    for path, module in modules:
        batch_stats = getattr(module, "use_running_average", True)
        dropout = not getattr(module, "deterministic", True) and getattr(
            module, "rate", 0
        )
        if batch_stats is False or dropout:
            where = ".".join(str(p) for p in path) or "the module"
            raise ValueError(
                f"model: {type(module).__name__} at {where} is in training mode; "
                "call model.eval() first (the kernel is that of a fixed function)"
            )


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
