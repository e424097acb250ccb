"""`RunOnceJit`: compile options at top level, a plain nested jit inside traces."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxfeat._src.compile_options import RunOnceJit


def _f(x, scale):
    return scale * jnp.sin(x) ** 2


def test_run_once_jit_matches_jit_under_every_transform():
    f = RunOnceJit(_f, static_argnames="scale")
    x = jnp.linspace(-1.0, 1.0, 5)
    want = 3.0 * np.sin(np.asarray(x, np.float64)) ** 2
    # float32 sin/pow: a few ulps of values below 3.
    np.testing.assert_allclose(f(x, scale=3.0), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda v: f(v, scale=3.0))(x), want, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda v: f(v, scale=3.0))(x), want, atol=1e-6)
    # A top-level call with compile options inside an outer jit is an error in JAX;
    # with only closed-over constants as arguments the dispatch must still see it.
    np.testing.assert_allclose(jax.jit(lambda: f(x, scale=3.0))(), want, atol=1e-6)
    # d/dx 3 sin^2 x = 3 sin 2x
    g = jax.grad(lambda v: f(v, scale=3.0).sum())(x)
    np.testing.assert_allclose(
        g, 3.0 * np.sin(2 * np.asarray(x, np.float64)), atol=1e-5
    )
