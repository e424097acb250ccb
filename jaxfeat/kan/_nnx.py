"""A flax NNX wrapper around the pure KAN functions.

flax is imported only here, and only when a wrapper is built or read. The module
holds the parameters as `nnx.Param` and the grids as a separate non-parameter
variable type, so `nnx.split(model, nnx.Param, ...)` hands optax the parameters
only. Its forward pass is `kan_apply`.
"""

from jaxfeat.kan._model import KANConfig


def kan_module(cfg: KANConfig, *, rngs):
    """A KAN as a flax NNX module.

    `module(x)` maps a batch `(N, d)` to `(N, out)`, or one example `(d,)` to `(out,)`.

    Args:
      cfg: the architecture.
      rngs: `flax.nnx.Rngs`; its `params` stream initialises the weights.

    Returns:
      An `nnx.Module` whose weights equal `init_kan(rngs.params(), cfg)`.
    """
    from jaxfeat.kan._nnx_module import KANModule

    return KANModule(cfg, rngs=rngs)


def to_pure(model):
    """`(params, grids)` of a `kan_module` as plain pytrees for `kan_apply`."""
    from jaxfeat.kan._nnx_module import to_pure as _to_pure

    return _to_pure(model)
