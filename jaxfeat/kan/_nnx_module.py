"""The flax NNX KAN module (imported only through `jaxfeat.kan.kan_module`)."""

import jax
from flax import nnx

from jaxfeat.kan._model import KANConfig, KANLayer, init_kan, kan_apply, kan_grids


class KANGrid(nnx.Variable):
    """A non-trainable knot array of a `KANModule`."""


class KANModule(nnx.Module):
    """A KAN as a flax NNX module; batched input `(N, d)` -> `(N, out)`.

    Args:
      cfg: the architecture.
      rngs: `nnx.Rngs`; the `params` stream initialises the weights.
    """

    def __init__(self, cfg: KANConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        params = init_kan(rngs.params(), cfg)
        self.base_weight = nnx.List([nnx.Param(p.base_weight) for p in params])
        self.spline_weight = nnx.List([nnx.Param(p.spline_weight) for p in params])
        self.spline_scaler = nnx.List([nnx.Param(p.spline_scaler) for p in params])
        self.grids = nnx.List([KANGrid(g) for g in kan_grids(cfg)])

    def __call__(self, x: jax.Array) -> jax.Array:
        params, grids = to_pure(self)
        f = lambda xi: kan_apply(params, xi, grids=grids, cfg=self.cfg)
        return jax.vmap(f)(x) if x.ndim == 2 else f(x)


def to_pure(model: KANModule):
    """`(params, grids)` of a module as plain pytrees for `kan_apply`."""
    params = tuple(
        KANLayer(b[...], s[...], c[...])
        for b, s, c in zip(
            model.base_weight, model.spline_weight, model.spline_scaler, strict=True
        )
    )
    return params, tuple(g[...] for g in model.grids)
