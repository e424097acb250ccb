"""`CostAwareJit`: fast-compiled first tier, tier-up, and plain jit inside traces."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxfeat._src.compile_options import CostAwareJit


def _f(x, scale):
    return scale * jnp.sin(x) ** 2


def _want(x, scale=3.0):
    return scale * np.sin(np.asarray(x, np.float64)) ** 2


def test_cost_aware_jit_matches_closed_form_under_every_transform():
    f = CostAwareJit(_f, static_argnames="scale")
    x = jnp.linspace(-1.0, 1.0, 5)
    # float32 sin/pow: a few ulps of values below 3.
    np.testing.assert_allclose(f(x, scale=3.0), _want(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        jax.jit(lambda v: f(v, scale=3.0))(x), _want(x), atol=1e-6
    )
    np.testing.assert_allclose(
        jax.vmap(lambda v: f(v, scale=3.0))(x), _want(x), atol=1e-6
    )
    # Only closed-over constants as arguments: the dispatch must still see the trace.
    np.testing.assert_allclose(jax.jit(lambda: f(x, scale=3.0))(), _want(x), atol=1e-6)
    # d/dx 3 sin^2 x = 3 sin 2x
    g = jax.grad(lambda v: f(v, scale=3.0).sum())(x)
    np.testing.assert_allclose(
        g, 3.0 * np.sin(2 * np.asarray(x, np.float64)), atol=1e-5
    )


def test_small_program_is_fast_compiled_then_tiers_up():
    f = CostAwareJit(_f, static_argnames="scale")
    x = jnp.linspace(-1.0, 1.0, 7)
    for n in range(4):  # expected 3 calls: fast tier for them, optimised from the 4th
        np.testing.assert_allclose(f.call(3, x, 2.0), _want(x, 2.0), atol=1e-6)
        assert f.tiers() == (["fast"] if n < 3 else ["optimised"])
    # static argument by keyword or position, one program; a new shape, a new one
    np.testing.assert_allclose(f(x, scale=2.0), _want(x, 2.0), atol=1e-6)
    assert len(f.tiers()) == 1
    np.testing.assert_allclose(f(x[:3], 2.0), _want(x[:3], 2.0), atol=1e-6)
    assert f.tiers() == ["optimised", "fast"]


def test_program_with_much_work_is_compiled_optimised_at_once():
    f = CostAwareJit(_f, static_argnames="scale")
    x = jnp.linspace(-1.0, 1.0, 7)
    # ~1e2 flops per call x 1e12 expected calls: far above FAST_COMPILE_FLOPS
    np.testing.assert_allclose(f.call(10**12, x, 2.0), _want(x, 2.0), atol=1e-6)
    assert f.tiers() == ["optimised"]
