r"""Deep linear encoder with a linear predictor (JEPA) or decoder (MAE).

The encoder is $\bar W = W^L \cdots W^1$ (each $W^a$ is `(d, d)`), the head is $V$.
Parameters are a `Params` pytree with the layers stacked on a leading axis. A stack of
`max_depth` layers can run at a smaller (possibly traced) `depth`: layers with index
$\ge$ depth are skipped and receive zero gradient, which lets one `vmap` sweep depths.
Every public function taking `depth` raises `ValueError` naming it when a concrete
depth is below 1 or above the number of stacked layers.

References:
  Littwin et al. 2024, arXiv:2407.03475, Sec. 3 (balanced, small orthogonal init);
  Arora et al. 2018, arXiv:1802.06509 (balancedness); claims LSSL-1, LSSL-2.
"""

import functools
import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from jaxfeat._src import linalg
from jaxfeat._src.arrays import as_float, default_float
from jaxfeat._src.checks import (
    check_count,
    check_finite,
    check_int_at_least,
    check_ndim,
    check_positive,
    check_shape,
    is_concrete,
)
from jaxfeat._src.typing import IntScalar, PRNGKey, Scalar


class Params(NamedTuple):
    r"""Parameters of a deep linear encoder and its linear head.

    Attributes:
      W: encoder layers $W^1, \dots, W^L$ stacked, shape `(l, d, d)`; `W[0]` acts first.
      V: predictor (JEPA) or decoder (MAE), shape `(d, d)`.
    """

    W: Float[Array, "l d d"]
    V: Float[Array, "d d"]


def check_depth(
    depth, max_depth: int, bound: str = "the number of stacked layers"
) -> None:
    """Raises for a concrete `depth` (scalar or array) below 1 or above `max_depth`."""
    if depth is None:
        return
    check_int_at_least("depth", depth, 1)
    if is_concrete(depth) and int(np.max(np.asarray(depth))) > max_depth:
        raise ValueError(
            f"depth: expected at most {max_depth} ({bound}); got {depth!r}"
        )


def check_params(params: Params, name: str = "params") -> int:
    """Returns `d`, or raises unless `W` is `(l, d, d)` and `V` is `(d, d)`."""
    V = params.V
    check_ndim(f"{name}.V", V, 2, "(d, d)")
    d = np.shape(V)[-1]
    check_shape(f"{name}.V", V, (d, d), f"(d, d) = ({d}, {d})")
    check_shape(f"{name}.W", params.W, (None, d, d), f"(l, {d}, {d}) as V")
    return d


def _check_model_inputs(arguments: dict) -> None:
    params = arguments["params"]
    d = check_params(params)
    n_layers = params.W.shape[-3]
    depth = arguments.get("depth")
    if depth is not None and np.ndim(depth) != 0:
        # an array compared elementwise with the layer index: depth [1, 2] on two
        # layers gave the full product
        raise ValueError(
            f"depth: expected a scalar (vmap over depths); got shape {np.shape(depth)}"
        )
    check_depth(depth, n_layers)
    target_W = arguments.get("target_W")
    if target_W is not None:
        check_shape("target_W", target_W, params.W.shape, f"{params.W.shape} as W")
        check_finite("target_W", target_W)
    cov = arguments.get("cov")
    if cov is not None:
        for part, m in zip(("xx", "yx", "yy"), cov, strict=True):
            check_shape(f"cov.{part}", m, (d, d), f"({d}, {d}) as params.V")
            check_finite(f"cov.{part}", m)
    for name in ("x", "y"):
        if name in arguments:
            x = arguments[name]
            if np.ndim(x) < 1 or np.shape(x)[-1] != d:
                raise ValueError(
                    f"{name}: expected a last axis of size d = {d} (as params.V); got "
                    f"shape {np.shape(x)}"
                )
            check_finite(name, x)


def inputs_checked(fn):
    """Checks the model inputs of a public function before `fn` runs.

    `params` must be `W` `(l, d, d)` and `V` `(d, d)`; a `depth` in 1..l; a
    `target_W` of `W`'s shape; `cov` matrices `(d, d)`; samples `x`, `y` with last
    axis `d`. Shapes are checked at trace time; values (NaN, a concrete depth) only
    when concrete. For public functions decorated with `jax.jit`: inside `jit` the
    arguments are tracers, so the checks run in this thin Python wrapper.
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _check_model_inputs(signature.bind(*args, **kwargs).arguments)
        return fn(*args, **kwargs)

    return wrapper


def _active(depth, n_layers: int):
    if depth is None:
        return jnp.ones((n_layers,), dtype=bool)
    return jnp.arange(n_layers) < depth


def init_aligned(
    eps: Scalar,
    *,
    d: int,
    depth: IntScalar,
    max_depth: int | None = None,
    dtype: DTypeLike | None = None,
) -> Params:
    r"""Balanced init aligned with every eigenbasis: $W^a = V = \varepsilon^{1/L} I$.

    Then $\bar W(0) = \varepsilon I$, and under gradient flow every matrix stays
    diagonal in any basis shared by $\Sigma_{xx}$ and $\Sigma_{yx}$ (claim LSSL-1).

    Args:
      eps: end-to-end init scale $\varepsilon > 0$, a scalar (may be traced).
      d: feature dimension.
      depth: encoder depth $L \ge 1$ (may be traced when `max_depth` is given).
      max_depth: number of stacked layers; default `depth` (which must then be an int).
        Layers beyond `depth` are set to the identity; pass the same `depth` to
        every later call (`simulate_gd`, `run_gd`, losses), or those layers count
        as active and are trained.
      dtype: float dtype; default: that of `eps`, or the default float.

    Returns:
      `Params` with `W` of shape `(max_depth, d, d)` and `V` of shape `(d, d)`.

    Raises:
      ValueError: if `eps` is not a scalar, `eps <= 0` or NaN, `d < 1`, `depth < 1`
        or `depth > max_depth` (values checked when concrete).
    """
    n_layers = _n_layers(depth, max_depth)
    dtype = default_float(dtype if dtype is not None else _dtype_of(eps))
    eps = as_float(eps, dtype)
    check_ndim("eps", eps, 0, "() (a scalar)")
    check_positive("eps", eps)
    check_count("d", d, 1)
    return _init_aligned(eps, jnp.asarray(depth), d=d, n_layers=n_layers)


@functools.partial(jax.jit, static_argnames=("d", "n_layers"))
def _init_aligned(eps, depth, *, d, n_layers):
    s = eps ** (1.0 / depth.astype(eps.dtype))
    eye = jnp.eye(d, dtype=eps.dtype)
    layer_scale = jnp.where(_active(depth, n_layers), s, jnp.ones((), eps.dtype))
    W = layer_scale[:, None, None] * eye[None]
    return Params(W=W, V=s * eye)


def _dtype_of(x):
    return (
        x.dtype
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
        else None
    )


def _n_layers(depth, max_depth):
    if max_depth is None:
        if not (is_concrete(depth) and np.ndim(depth) == 0):
            raise TypeError(
                "max_depth: required when depth is traced (e.g. under vmap) or not "
                f"a scalar; got depth={depth!r}"
            )
        check_int_at_least("depth", depth, 1)
        max_depth = int(depth)
    check_int_at_least("max_depth", max_depth, 1)
    check_depth(depth, max_depth)
    return max_depth


def _haar_orthogonal(key, d, dtype):
    q, r = linalg.qr(jax.random.normal(key, (d, d), dtype))
    return q * jnp.sign(jnp.diagonal(r))[None]  # sign fix makes Q Haar-distributed


def init_orthogonal(
    key: PRNGKey,
    eps: Scalar,
    *,
    d: int,
    depth: IntScalar,
    max_depth: int | None = None,
    dtype: DTypeLike | None = None,
) -> Params:
    r"""Balanced init with independent Haar-random orthogonal layers.

    $W^a = \varepsilon^{1/L} U^a$ and $V = \varepsilon^{1/L} U^v$ with $U$ Haar
    orthogonal: balanced ($W^{a+1\top} W^{a+1} = W^a W^{a\top}$) but not aligned with
    the data, so modes couple (explored in `experiments/linear_ssl/`).

    Args:
      key: PRNG key.
      eps: end-to-end scale, so $\|\bar W(0)\|_2 = \varepsilon$.
      d: feature dimension.
      depth: encoder depth $L \ge 1$.
      max_depth: number of stacked layers (default `depth`); extra layers are identity.
      dtype: float dtype; default: that of `eps`, or the default float.

    Returns:
      `Params` with `W` of shape `(max_depth, d, d)` and `V` of shape `(d, d)`.

    Raises:
      ValueError: as `init_aligned`.
    """
    n_layers = _n_layers(depth, max_depth)
    dtype = default_float(dtype if dtype is not None else _dtype_of(eps))
    eps = as_float(eps, dtype)
    check_ndim("eps", eps, 0, "() (a scalar)")
    check_positive("eps", eps)
    check_count("d", d, 1)
    return _init_orthogonal(key, eps, jnp.asarray(depth), d=d, n_layers=n_layers)


@functools.partial(jax.jit, static_argnames=("d", "n_layers"))
def _init_orthogonal(key, eps, depth, *, d, n_layers):
    s = eps ** (1.0 / depth.astype(eps.dtype))
    keys = jax.random.split(key, n_layers + 1)
    U = jax.vmap(lambda k: _haar_orthogonal(k, d, eps.dtype))(keys)
    eye = jnp.eye(d, dtype=eps.dtype)
    W = jnp.where(_active(depth, n_layers)[:, None, None], s * U[:-1], eye[None])
    return Params(W=W, V=s * U[-1])


@inputs_checked
@jax.jit
def encoder_matrix(
    params: Params, depth: IntScalar | None = None
) -> Float[Array, "d d"]:
    r"""End-to-end encoder $\bar W = W^L \cdots W^1$.

    Args:
      params: `Params` with `W` of shape `(l, d, d)`.
      depth: active layers (default all `l`); may be traced.

    Returns:
      $\bar W$, shape `(d, d)`.
    """
    W = params.W
    active = _active(depth, W.shape[0])
    out = jnp.eye(W.shape[-1], dtype=W.dtype)
    for a in range(W.shape[0]):  # depth is small and static: unrolled
        out = jnp.where(active[a], W[a] @ out, out)
    return out


@inputs_checked
@jax.jit
def encode(
    params: Params, x: Float[Array, "*batch d"], depth: IntScalar | None = None
) -> Float[Array, "*batch d"]:
    r"""Representation $\bar W x$ of each example in `x`, shape `(..., d)`.

    Rows are examples: a batch `(n, d)` gives `(n, d)`, `x @ W̄^T`.
    """
    return x @ encoder_matrix(params, depth).T


@inputs_checked
@jax.jit
def predict(
    params: Params, x: Float[Array, "*batch d"], depth: IntScalar | None = None
) -> Float[Array, "*batch d"]:
    r"""Head output $V \bar W x$ of each example in `x`, shape `(..., d)` (rows)."""
    return encode(params, x, depth) @ params.V.T


@inputs_checked
@jax.jit
def imbalance(params: Params, depth: IntScalar | None = None) -> Float[Array, ""]:
    r"""Largest violation of the balancedness conservation laws.

    $\max\big(\max_a \|W^{a+1\top}W^{a+1} - W^a W^{a\top}\|_F,\;
    \|V^\top V - W^L W^{L\top}\|_F\big)$, zero along gradient flow from a balanced
    init, for JEPA (with stop-gradient) and MAE alike (claim LSSL-2).

    Args:
      params: `Params`, `W` of shape `(l, d, d)`.
      depth: active layers $L$ (default all); may be traced.

    Returns:
      A non-negative scalar.
    """
    W = params.W
    n = W.shape[0]
    depth_ = n if depth is None else depth
    gaps = [jnp.zeros((), W.dtype)]
    for a in range(n - 1):
        gap = jnp.linalg.norm(W[a + 1].T @ W[a + 1] - W[a] @ W[a].T)
        gaps.append(jnp.where(a + 1 < depth_, gap, 0.0))
    top = W[jnp.asarray(depth_) - 1]
    gaps.append(jnp.linalg.norm(params.V.T @ params.V - top @ top.T))
    return jnp.max(jnp.stack(gaps))
