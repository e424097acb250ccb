r"""Kolmogorov–Arnold networks with B-spline edges (efficient-kan formulation).

A layer maps `x in R^d` to `h in R^H` with one learnable function per edge,

$$\phi_{q,p}(x) = W^b_{q,p}\,\mathrm{silu}(x) + S_{q,p}\sum_k C_{q,p,k} B_k(x; t_p),
\qquad h_q = \sum_p \phi_{q,p}(x_p),$$

and no bias (Liu et al. 2024, arXiv:2404.19756; the efficient-kan layout used by
Akazan & Mbingui 2025, arXiv:2509.23366). The forward pass evaluates the basis once
and contracts it with the scaled coefficients (one matmul once batched by `vmap`).

The grid is not a parameter: `init_kan` returns params only and `kan_grids` the knots,
so optax never updates the grid. `update_kan_grids` adapts the grids to data and refits
the coefficients so the network's function is kept (up to the new grid's resolution).
"""

import dataclasses
import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from jaxfeat._src import checks
from jaxfeat._src.arrays import as_float
from jaxfeat.kan._bspline import (
    _basis_lead,
    _check_grid,
    _check_ridge,
    _fit,
    bspline_basis,
    grid_from_samples,
    uniform_grid,
)
from jaxfeat.kan._cardinal import is_uniform, uniform_basis_lead

_INITS = ("paper", "efficient_kan")
BASES = ("de_boor", "uniform")


class KANLayer(NamedTuple):
    """Parameters of one KAN layer with `d` inputs and `H` outputs.

    Attributes:
      base_weight: `(H, d)` weights of the SiLU branch `W^b`.
      spline_weight: `(H, d, G + K)` spline coefficients `C`.
      spline_scaler: `(H, d)` per-edge spline scale `S`.
    """

    base_weight: ArrayLike
    spline_weight: ArrayLike
    spline_scaler: ArrayLike


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


@dataclasses.dataclass(frozen=True, kw_only=True)
class KANConfig:
    """A KAN architecture.

    Attributes:
      widths: `(d, H_1, ..., out)`, at least two entries.
      grid_size: intervals `G` of the initial uniform grid.
      order: spline order `K` (3 = cubic).
      grid_range: `(lo, hi)` of the initial grid.
      init: `"paper"` (spline scale 1, as the authors' code) or `"efficient_kan"`
        (spline scale Kaiming-uniform).
      scale_noise: amplitude of the initial spline noise.
      scale_base: multiplier of the base-weight init.
      scale_spline: multiplier of the spline-scale init.
      basis: how basis values are computed: `"de_boor"` (Cox–de Boor, any grid) or
        `"uniform"` (closed-form cardinal B-splines, about 2x faster training on CPU;
        valid only while every grid row is uniformly spaced: the initial grids, or
        `update_kan_grids(..., grid_eps=1.0)`; a concrete non-uniform grid is an error).
    """

    widths: tuple[int, ...]
    grid_size: int | np.integer = 5  # NumPy integers are stored as Python ints
    order: int | np.integer = 3
    grid_range: tuple[float, float] = (-1.0, 1.0)
    init: str = "paper"
    scale_noise: float = 0.1
    scale_base: float = 1.0
    scale_spline: float = 1.0
    basis: str = "de_boor"

    def __post_init__(self):
        widths = tuple(self.widths)
        if len(widths) < 2 or any(not _is_int(w) or w < 1 for w in widths):
            raise ValueError(
                "widths: expected >= 2 positive ints (d, ..., out); "
                f"got {self.widths!r}"
            )
        object.__setattr__(self, "widths", tuple(int(w) for w in widths))
        # NumPy integers are accepted (and stored as Python ints); bools are not.
        if not _is_int(self.grid_size) or self.grid_size < 1:
            raise ValueError(f"grid_size: expected an int >= 1; got {self.grid_size!r}")
        object.__setattr__(self, "grid_size", int(self.grid_size))
        if not _is_int(self.order) or self.order < 0:
            raise ValueError(f"order: expected an int >= 0; got {self.order!r}")
        object.__setattr__(self, "order", int(self.order))
        if not (
            isinstance(self.grid_range, tuple | list)
            and len(self.grid_range) == 2
            and all(isinstance(v, numbers.Real) for v in self.grid_range)
        ):
            raise ValueError(
                f"grid_range: expected a pair (lo, hi) of numbers; got "
                f"{self.grid_range!r}"
            )
        lo, hi = self.grid_range
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(
                f"grid_range: expected finite lo < hi; got {self.grid_range!r}"
            )
        object.__setattr__(self, "grid_range", (float(lo), float(hi)))
        checks.check_choice("init", self.init, _INITS)
        checks.check_choice("basis", self.basis, BASES)
        for name in ("scale_noise", "scale_base", "scale_spline"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name}: expected a number; got {value!r}")
            checks.check_positive(name, value, strict=False)

    @property
    def n_basis(self) -> int:
        """Basis functions per edge, `G + K`."""
        return self.grid_size + self.order


def kan_grids(cfg: KANConfig, *, dtype=None) -> tuple[jax.Array, ...]:
    """The initial uniform grids, one `(d_l, G + 2K + 1)` array per layer."""
    return tuple(
        uniform_grid(d, cfg.grid_size, cfg.order, cfg.grid_range, dtype=dtype)
        for d in cfg.widths[:-1]
    )


def _init_layer(key, d, h, cfg, grid):
    kb, kn, ks = jax.random.split(key, 3)
    bound = 1.0 / np.sqrt(d)
    dtype = grid.dtype
    base = cfg.scale_base * jax.random.uniform(
        kb, (h, d), dtype, minval=-bound, maxval=bound
    )
    if cfg.init == "paper":
        scaler = jnp.full((h, d), cfg.scale_spline, dtype)
    else:
        scaler = cfg.scale_spline * jax.random.uniform(
            ks, (h, d), dtype, minval=-bound, maxval=bound
        )
    # Small random curves sampled at the G + 1 interior knots, fitted by least squares.
    k = cfg.order
    pts = grid[:, k : grid.shape[1] - k].T  # (G + 1, d)
    noise = (jax.random.uniform(kn, (pts.shape[0], d, h), dtype) - 0.5) * (
        cfg.scale_noise / cfg.grid_size
    )
    coef = _fit(bspline_basis(pts, grid, k), noise, 0.0)
    return KANLayer(base, coef, scaler)


def init_kan(key: ArrayLike, cfg: KANConfig, *, dtype=None) -> tuple[KANLayer, ...]:
    """Initial parameters, one `KANLayer` per layer (a tuple pytree).

    Base weights are `U(-1/sqrt(d), 1/sqrt(d))` (Kaiming-uniform with a = sqrt 5, as
    torch's `Linear`), spline coefficients fit small uniform noise at the interior
    knots (efficient-kan), spline scales are 1 (`init="paper"`) or Kaiming-uniform.

    Args:
      key: PRNG key.
      cfg: the architecture.
      dtype: float dtype; default the current default float.
    """
    grids = kan_grids(cfg, dtype=dtype)
    keys = jax.random.split(key, len(grids))
    return tuple(
        _init_layer(k, d, h, cfg, g)
        for k, d, h, g in zip(keys, cfg.widths[:-1], cfg.widths[1:], grids, strict=True)
    )


def _check_layer(name, layer, d, h, n_basis):
    # shapes of one layer's parameters (per example under vmap)
    want = dict(base_weight=(h, d), spline_weight=(h, d, n_basis), spline_scaler=(h, d))
    for field, shape in want.items():
        got = np.shape(getattr(layer, field))
        if got != shape:
            raise ValueError(f"{name}: expected {field} of shape {shape}; got {got}")


def _check_uniform(name, grid, basis):
    if basis == "uniform" and checks.is_concrete(grid) and not is_uniform(grid):
        raise ValueError(
            f"{name}: basis='uniform' needs uniformly spaced knots in every row; "
            "use basis='de_boor' for adapted grids"
        )


def _check_net(params, grids, cfg, x=None):
    """Layer count, parameter and grid shapes, uniform grids; `x` one example."""
    if len(params) != len(cfg.widths) - 1 or len(grids) != len(params):
        raise ValueError(
            f"params/grids: expected {len(cfg.widths) - 1} layers for widths "
            f"{cfg.widths}; got {len(params)} params and {len(grids)} grids"
        )
    for i, (p, g) in enumerate(zip(params, grids, strict=True)):
        d, h = cfg.widths[i], cfg.widths[i + 1]
        _check_layer(f"params[{i}]", p, d, h, cfg.n_basis)
        if np.shape(g) != (d, cfg.n_basis + cfg.order + 1):
            raise ValueError(
                f"grids[{i}]: expected shape {(d, cfg.n_basis + cfg.order + 1)}; "
                f"got {np.shape(g)}"
            )
        _check_uniform(f"grids[{i}]", g, cfg.basis)
    if x is not None and np.shape(x) != (cfg.widths[0],):
        raise ValueError(
            f"x: expected one example of shape ({cfg.widths[0]},); got {np.shape(x)} "
            "(batch with jax.vmap)"
        )


def layer_edges(
    layer: KANLayer,
    grid: ArrayLike,
    x: ArrayLike,
    order: int,
    basis: str = "de_boor",
):
    """Every edge's output `phi_{q,p}(x_p)` of one layer for one example.

    Args:
      layer: the layer's parameters.
      grid: `(d, G + 2K + 1)` knots.
      x: `(d,)` input.
      order: spline order `K`.
      basis: `"de_boor"` or `"uniform"` (see `KANConfig.basis`).

    Returns:
      `(d, H)` edge outputs; summing over the first axis gives the layer output.

    Raises:
      ValueError: shapes that do not match, a concrete `x` or grid with NaN or
        infinity, or a concrete non-uniform grid with `basis="uniform"`.
    """
    _check_grid(x, grid, order)
    checks.check_choice("basis", basis, BASES)
    d, m = np.shape(grid)
    h = np.shape(layer.base_weight)[0] if np.ndim(layer.base_weight) else 0
    _check_layer("layer", layer, d, h, m - order - 1)
    _check_uniform("grid", grid, basis)
    return _edges(
        layer, grid, as_float(x, non_float=layer.spline_weight.dtype), order, basis
    )


def _basis_values(x, grid, order, basis):
    # (nb, d), basis axis first (see _bspline)
    if basis == "uniform":
        return uniform_basis_lead(x, grid, order)
    return _basis_lead(x, grid, order)


@functools.partial(jax.jit, static_argnames=("order", "basis"))
def _edges(layer, grid, x, order, basis="de_boor"):
    values = _basis_values(x, grid, order, basis)  # (nb, d)
    spline = jnp.einsum("kp,qpk->pq", values, layer.spline_weight)
    base = jax.nn.silu(x)[:, None] * layer.base_weight.T
    return base + spline * layer.spline_scaler.T


def _layer_apply(layer, grid, x, order, basis="de_boor"):
    values = _basis_values(x, grid, order, basis)  # (nb, d)
    return _layer_from_values(layer, values, jax.nn.silu(x))


def _layer_from_values(layer, values, silu_x):
    # one layer given its input's basis values (nb, d) and SiLU (d,)
    coef = layer.spline_weight * layer.spline_scaler[..., None]
    return layer.base_weight @ silu_x + jnp.einsum("qpk,kp->q", coef, values)


def _first_layer_features(x, grid, cfg):
    """Basis values `(nb, d)` and SiLU `(d,)` of one input.

    All the first layer needs from `x`, independent of the parameters (so training
    loops compute them once).
    """
    return _basis_values(x, grid, cfg.order, cfg.basis), jax.nn.silu(x)


def _apply_from_features(params, values, silu_x, grids, cfg):
    """`_apply` for one example whose first-layer features are precomputed."""
    h = _layer_from_values(params[0], values, silu_x)
    for layer, grid in zip(params[1:], grids[1:], strict=True):
        h = _layer_apply(layer, grid, h, cfg.order, cfg.basis)
    return h


def kan_apply(
    params: tuple[KANLayer, ...],
    x: ArrayLike,
    *,
    grids: tuple[jax.Array, ...],
    cfg: KANConfig,
) -> jax.Array:
    """The network's output for one example.

    Args:
      params: one `KANLayer` per layer.
      x: `(d,)` input (batch with `jax.vmap`).
      grids: one `(d_l, G + 2K + 1)` knot array per layer (not trained).
      cfg: the architecture.

    Returns:
      `(out,)` outputs (logits for classification).

    Raises:
      ValueError: parameter, grid or input shapes that do not match `cfg`, a
        concrete `x` with NaN or infinity, or a concrete non-uniform grid with
        `cfg.basis="uniform"`.
    """
    _check_net(params, grids, cfg, x)
    checks.check_finite("x", x)
    return _apply(
        params, as_float(x, non_float=params[0].spline_weight.dtype), grids, cfg
    )


@functools.partial(jax.jit, static_argnames=("cfg",))
def _apply(params, x, grids, cfg):
    h = x
    for layer, grid in zip(params, grids, strict=True):
        h = _layer_apply(layer, grid, h, cfg.order, cfg.basis)
    return h


def kan_layer_inputs(params, x, *, grids, cfg) -> tuple[jax.Array, ...]:
    """The input of every layer for one example (`x` first, then hidden activations)."""
    _check_net(params, grids, cfg, x)
    checks.check_finite("x", x)
    return _inputs(
        params, as_float(x, non_float=params[0].spline_weight.dtype), grids, cfg
    )


@functools.partial(jax.jit, static_argnames=("cfg",))
def _inputs(params, x, grids, cfg):
    hs = [x]
    for layer, grid in zip(params[:-1], grids[:-1], strict=True):
        hs.append(_layer_apply(layer, grid, hs[-1], cfg.order, cfg.basis))
    return tuple(hs)


def update_kan_grids(
    params: tuple[KANLayer, ...],
    x: ArrayLike,
    *,
    grids: tuple[jax.Array, ...],
    cfg: KANConfig,
    grid_size: int | None = None,
    grid_eps: float = 0.02,
    margin: float = 0.01,
    ridge: float | ArrayLike = 1e-8,
):
    """Adapts every layer's grid to the samples `x` and refits its coefficients.

    Each layer's new grid comes from `grid_from_samples` on that layer's inputs;
    coefficients are refit by least squares so each edge keeps its current spline on
    the samples (pykan's `update_grid_from_samples`). With `grid_size` larger than the
    current one this is also grid extension (refinement).

    Args:
      params: the network's parameters.
      x: `(N, d)` samples.
      grids: the current grids.
      cfg: the architecture.
      grid_size: new `G` (default: keep).
      grid_eps: weight of the uniform grid (see `grid_from_samples`).
      margin: padding of the sample range.
      ridge: Tikhonov weight of the refit (keeps basis functions without data at
        0), a non-negative Python float or concrete scalar.

    Returns:
      `(new_params, new_grids, new_cfg)` in the parameters' dtype (`x` is cast to
      it); `new_cfg` differs only in `grid_size`.

    Raises:
      ValueError: shapes that do not match `cfg`, a concrete `x` with NaN or
        infinity, or a negative `ridge`.
    """
    checks.check_ndim("x", x, 2, "(N, d)")
    if np.shape(x)[1] != cfg.widths[0]:
        raise ValueError(
            f"x: expected {cfg.widths[0]} features to match cfg.widths; "
            f"got {np.shape(x)[1]}"
        )
    checks.check_finite("x", x)
    _check_net(params, grids, cfg)
    ridge = _check_ridge(ridge)
    if cfg.basis == "uniform" and grid_eps != 1.0:
        raise ValueError(
            f"grid_eps: cfg.basis='uniform' keeps grids uniform, so grid_eps must be "
            f"1.0; got {grid_eps} (use basis='de_boor' for adapted grids)"
        )
    new_g = cfg.grid_size if grid_size is None else grid_size
    checks.check_count("grid_size", new_g, 1)
    new_cfg = dataclasses.replace(cfg, grid_size=new_g)
    # samples in the parameters' dtype: float64 samples under x64 would otherwise
    # promote the refit coefficients and grids only, mixing dtypes in the network
    x = jnp.asarray(x, params[0].spline_weight.dtype)
    inputs = jax.vmap(lambda xi: kan_layer_inputs(params, xi, grids=grids, cfg=cfg))(x)
    new_params, new_grids = [], []
    for layer, grid, h in zip(params, grids, inputs, strict=True):
        old = jnp.einsum(
            "npk,qpk->npq", bspline_basis(h, grid, cfg.order), layer.spline_weight
        )
        g = grid_from_samples(h, new_g, cfg.order, grid_eps=grid_eps, margin=margin)
        coef = _fit(bspline_basis(h, g, cfg.order), old, ridge)
        new_params.append(layer._replace(spline_weight=coef))
        new_grids.append(g)
    return tuple(new_params), tuple(new_grids), new_cfg
