"""Small array helpers shared by the pillars."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike


def as_float(x, dtype: DTypeLike | None = None, *, non_float: DTypeLike | None = None):
    """`x` as a floating array: `dtype` if given, else its own float dtype.

    Integer and boolean inputs (and Python numbers) become `non_float`, by default
    the default float `jnp.result_type(float)`: float32, or float64 when x64 is on
    (pass the parameters' dtype to keep a model's dtype for integer samples).
    """
    if dtype is not None:
        return jnp.asarray(x, dtype=dtype)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(default_float(non_float))
    return x


def default_float(dtype: DTypeLike | None = None):
    """`dtype`, or the default float dtype when it is None."""
    return jnp.result_type(float) if dtype is None else jnp.dtype(dtype)


def to_device(x) -> jax.Array:
    """`jnp.asarray(x)` without compiling: host data goes through `jax.device_put`.

    JAX arrays and tracers are returned as they are; anything but a NumPy array
    goes through `jnp.asarray` (its checks and weak types). (`jnp.asarray` of a
    NumPy array compiles a small copy program per shape and dtype, ~10 ms on a CPU;
    `device_put` converts the dtype on the host, float64 -> float32 unless x64.)
    """
    if isinstance(x, jax.Array):
        return x
    if isinstance(x, np.ndarray) and x.dtype.kind in "biufc":
        return jax.device_put(x)
    return jnp.asarray(x)


def leading(x: jax.Array, n: int, axis: int = 0) -> jax.Array:
    """The first `n` entries of `x` along `axis` (`x` itself when it has `n`).

    A concrete numeric array on one CPU device is sliced on the host: an eager
    slice compiles a program per shape (~50 ms), a NumPy view costs nothing there.
    """
    if x.shape[axis] == n:
        return x
    concrete = isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)
    if (
        concrete
        and jnp.issubdtype(x.dtype, jnp.number)
        and [d.platform for d in x.devices()] == ["cpu"]
    ):
        return jax.device_put(np.asarray(x).take(np.arange(n), axis=axis))
    return jax.lax.slice_in_dim(x, 0, n, axis=axis)
