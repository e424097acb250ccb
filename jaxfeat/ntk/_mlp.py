r"""Fully connected networks in the NTK or standard parameterisation, with layer taps.

A layer computes $z = s_w\, h W + s_b\, b$ with $s_w = \sigma_w/\sqrt{n_{in}}$,
$s_b = \sigma_b$ in the NTK parameterisation (weights $\sim N(0, 1)$), or
$s_w = s_b = 1$ in the standard one (weights $\sim N(0, \sigma_w^2/n_{in})$, biases
$\sim N(0, \sigma_b^2)$). `mlp_taps` also returns, per layer, the scaled input
$s_w h$ and bias scale $s_b$, and accepts additive perturbations of every
pre-activation: the ingredients of the structured empirical NTK.

References:
  Jacot, Gabriel & Hongler 2018, arXiv:1806.07572 (NTK parameterisation);
  Novak et al. 2020, arXiv:1912.02803 (neural-tangents `stax.Dense`).
"""

import dataclasses
import math
from typing import NamedTuple

import jax
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from jaxfeat._src.arrays import default_float
from jaxfeat._src.checks import check_choice, check_count
from jaxfeat._src.typing import PRNGKey
from jaxfeat.ntk._activations import ACTIVATIONS, activation_fn

PARAMETERIZATIONS = ("ntk", "standard")


class Dense(NamedTuple):
    """One dense layer's parameters: `w` of shape `(n_in, n_out)`, `b` of `(n_out,)`."""

    w: Float[Array, "i o"]
    b: Float[Array, " o"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MLPConfig:
    r"""A fully connected network (hashable: pass as a static argument).

    Attributes:
      in_dim: input dimension $d$.
      widths: hidden widths, one per hidden layer (empty: a linear model).
      out_dim: number of outputs.
      activation: one of `relu`, `tanh`, `erf`, `linear`, `gelu`, `softplus`.
      parameterization: `"ntk"` or `"standard"`.
      W_std: weight scale $\sigma_w$.
      b_std: bias scale $\sigma_b$ (0 keeps zero-scaled biases).
    """

    in_dim: int
    widths: tuple[int, ...] = (512,)
    out_dim: int = 1
    activation: str = "relu"
    parameterization: str = "ntk"
    W_std: float = 1.0
    b_std: float = 0.0

    def __post_init__(self):
        check_count("in_dim", self.in_dim, 1)
        check_count("out_dim", self.out_dim, 1)
        for w in self.widths:
            check_count("widths", w, 1)
        # a list would make the config unhashable, so unusable as a static argument
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        if not 0 < self.W_std < math.inf:
            raise ValueError(f"W_std: expected a finite value > 0; got {self.W_std!r}")
        if not 0 <= self.b_std < math.inf:
            raise ValueError(f"b_std: expected a finite value >= 0; got {self.b_std!r}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer sizes from input to output."""
        return (self.in_dim, *self.widths, self.out_dim)

    @property
    def n_params(self) -> int:
        """Number of scalar parameters."""
        return sum(
            (a + 1) * b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        )


def init_mlp(
    key: PRNGKey, cfg: MLPConfig, dtype: DTypeLike | None = None
) -> tuple[Dense, ...]:
    """Samples MLP parameters for `cfg`.

    Args:
      key: PRNG key.
      cfg: network configuration.
      dtype: float dtype (default: the default float).

    Returns:
      A tuple of `Dense` layers, input to output.
    """
    dtype = default_float(dtype)
    keys = jax.random.split(key, len(cfg.sizes) - 1)
    layers = []
    for k, n_in, n_out in zip(keys, cfg.sizes[:-1], cfg.sizes[1:], strict=True):
        kw, kb = jax.random.split(k)
        w = jax.random.normal(kw, (n_in, n_out), dtype)
        b = jax.random.normal(kb, (n_out,), dtype)
        if cfg.parameterization == "standard":
            w, b = w * cfg.W_std / math.sqrt(n_in), b * cfg.b_std
        layers.append(Dense(w, b))
    return tuple(layers)


def _scales(cfg: MLPConfig, n_in: int) -> tuple[float, float]:
    if cfg.parameterization == "ntk":
        return cfg.W_std / math.sqrt(n_in), cfg.b_std
    return 1.0, 1.0


def mlp_taps(
    params: tuple[Dense, ...],
    x: Float[Array, " d"],
    cfg: MLPConfig,
    deltas: tuple[Array, ...] | None = None,
) -> tuple[Float[Array, " k"], tuple[Float[Array, " i"], ...], tuple[float, ...]]:
    r"""Forward pass of one example with pre-activation perturbations and layer taps.

    Args:
      params: layers from `init_mlp`.
      x: one input, shape `(d,)`.
      cfg: network configuration.
      deltas: per-layer additive perturbations of the pre-activations (zeros by
        default); differentiating the output in them gives
        $\partial f/\partial z_l$.

    Returns:
      `(out, inputs, bias_scales)`: the output `(k,)`, the scaled input $s_w h_l$ of
      every layer, and every layer's bias scale $s_b$, so that
      $\partial f/\partial W_l = (s_w h_l) \otimes \partial f/\partial z_l$ and
      $\partial f/\partial b_l = s_b\, \partial f/\partial z_l$.
    """
    act = activation_fn(cfg.activation)
    h, inputs, bias_scales = x, [], []
    n_layers = len(params)
    for i, layer in enumerate(params):
        sw, sb = _scales(cfg, layer.w.shape[0])
        hs = sw * h
        z = hs @ layer.w + sb * layer.b
        if deltas is not None:
            z = z + deltas[i]
        inputs.append(hs)
        bias_scales.append(sb)
        h = z if i == n_layers - 1 else act(z)
    return h, tuple(inputs), tuple(bias_scales)


def mlp_apply(
    params: tuple[Dense, ...], x: Float[Array, " d"], cfg: MLPConfig
) -> Float[Array, " k"]:
    """Output of the MLP for one example `x` (shape `(d,)`); `vmap` to batch."""
    return mlp_taps(params, x, cfg)[0]
