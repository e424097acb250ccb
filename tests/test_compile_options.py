"""`CostAwareJit`: fast-compiled first tier, tier-up, and plain jit inside traces."""

from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat._src import compile_options
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


def _cast(x, like):
    return x.astype(type(like))


def test_static_arguments_equal_in_value_but_not_type_get_their_own_program():
    f = CostAwareJit(_cast, static_argnames="like")
    x = jnp.arange(3)
    np.testing.assert_array_equal(f(x, 1), [0, 1, 2])
    np.testing.assert_array_equal(f(x, True), [False, True, True])  # 1 == True


def test_program_with_a_loop_is_compiled_optimised():
    # XLA's flop estimate counts a loop body once: the trip count is invisible.
    def loop(x):
        return jax.lax.fori_loop(0, 100, lambda i, v: jnp.sin(v), x)

    f = CostAwareJit(loop)
    x = jnp.linspace(-1.0, 1.0, 5)
    want = np.asarray(x, np.float64)
    for _ in range(100):
        want = np.sin(want)
    np.testing.assert_allclose(f(x), want, atol=1e-6)
    assert f.tiers() == ["optimised"]


def test_follows_disable_jit_and_rejects_variadic_functions():
    f = CostAwareJit(_f, static_argnames="scale")
    x = jnp.linspace(-1.0, 1.0, 5)
    with jax.disable_jit():
        np.testing.assert_allclose(f(x, 3.0), _want(x), atol=1e-6)
    assert f.tiers() == []
    with pytest.raises(TypeError, match="fn"):
        CostAwareJit(lambda *xs: xs)


def test_program_cache_follows_the_x64_mode(x64_switch):
    f = CostAwareJit(lambda x: x * 1.0)
    host = np.ones(3)  # float64 on the host
    assert f(host).dtype == jnp.float32
    with x64_switch(True):  # same types in: a float64 program, not the cached one
        assert f(host).dtype == jnp.float64
    assert f(host).dtype == jnp.float32
    assert len(f.tiers()) == 2


def test_an_option_this_xla_lacks_falls_back_to_the_defaults(monkeypatch):
    monkeypatch.setattr(compile_options, "FAST_COMPILE", {"xla_no_such_option": 1})
    f = CostAwareJit(_f, static_argnames="scale")
    x = jnp.linspace(-1.0, 1.0, 5)
    np.testing.assert_allclose(f(x, 3.0), _want(x), atol=1e-6)


def test_calls_from_many_threads_compile_once_and_tier_up_once(monkeypatch):
    compiles = []
    real_compile = compile_options._compile

    def counting_compile(lowered, options):
        compiles.append(options)
        return real_compile(lowered, options)

    monkeypatch.setattr(compile_options, "_compile", counting_compile)
    f = CostAwareJit(_f, static_argnames="scale")
    x = jnp.linspace(-1.0, 1.0, 9)
    with ThreadPoolExecutor(max_workers=8) as pool:
        outs = list(pool.map(lambda _: f.call(3, x, 2.0), range(64)))
    for out in outs:
        np.testing.assert_allclose(out, _want(x, 2.0), atol=1e-6)
    assert f.tiers() == ["optimised"]
    assert compiles == [compile_options.FAST_COMPILE, compile_options.TIER_UP]


def test_xla_flags_for_tests_drop_an_option_this_xla_lacks(monkeypatch):
    from jaxfeat._src.testing import fast_compile_xla_flags

    assert fast_compile_xla_flags().startswith("--xla_backend_optimization_level=0")
    monkeypatch.setitem(compile_options.FAST_COMPILE, "xla_no_such_option", 1)
    assert fast_compile_xla_flags() == "--xla_backend_optimization_level=0"
