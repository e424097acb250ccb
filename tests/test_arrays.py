"""`to_device` and `leading`: host-side conversion and slicing, same values as jnp."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxfeat._src.arrays import leading, to_device


def test_to_device_converts_like_jnp_asarray():
    host = np.arange(12, dtype=np.float64).reshape(3, 4) / 7.0
    got, want = to_device(host), jnp.asarray(host)
    assert got.dtype == want.dtype  # float32 unless x64 is on
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    labels = to_device([1, 2, 3])
    assert labels.dtype == jnp.asarray([1, 2, 3]).dtype
    x = jnp.ones(3)
    assert to_device(x) is x


def test_leading_equals_slicing_eagerly_and_under_jit():
    x = jnp.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(leading(x, 2, axis=1), np.asarray(x)[:, :2])
    np.testing.assert_array_equal(leading(x, 1), np.asarray(x)[:1])
    assert leading(x, 3, axis=1) is x
    traced = jax.jit(lambda v: leading(v, 2, axis=2))(x)
    np.testing.assert_array_equal(traced, np.asarray(x)[:, :, :2])
