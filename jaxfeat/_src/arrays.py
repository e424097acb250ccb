"""Small array helpers shared by the pillars."""

import jax.numpy as jnp
from jax.typing import DTypeLike


def as_float(x, dtype: DTypeLike | None = None):
    """`x` as a floating array: `dtype` if given, else its own float dtype.

    Integer and boolean inputs (and Python numbers) become the default float,
    `jnp.result_type(float)`: float32, or float64 when x64 is on.
    """
    if dtype is not None:
        return jnp.asarray(x, dtype=dtype)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def default_float(dtype: DTypeLike | None = None):
    """`dtype`, or the default float dtype when it is None."""
    return jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
