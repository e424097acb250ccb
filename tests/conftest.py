"""Shared fixtures: a per-test key, float64 opt-in, strict rank promotion, --runslow."""

import os
import zlib

from jaxfeat._src.testing import fast_compile_xla_flags

# The suite is dominated by XLA compile time on small programs (see
# fast_compile_xla_flags). Set before jax initialises its backend; an explicit
# XLA_FLAGS wins. pytest-xdist's workers inherit it from the main process.
if "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = fast_compile_xla_flags()

import chex  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")  # no silent broadcasting

# .ci/run keeps what the suite compiles for its smoke `jaxfeat reproduce`: a persistent
# compilation cache per pytest worker (one writer per folder; JAX's shared-folder lock
# rescans the whole folder on every write), merged once the tests are done. XLA's own
# caches off: their folder enters the cache key, which must not depend on the folder.
if _ci_cache := os.environ.get("JAXFEAT_TEST_COMPILATION_CACHE"):
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    jax.config.update("jax_persistent_cache_enable_xla_caches", "none")
    jax.config.update("jax_compilation_cache_dir", os.path.join(_ci_cache, _worker))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run paper-scale tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="paper-scale; pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def key(request):
    """Seeded from the test id: stable across runs, distinct per test."""
    return jax.random.key(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def x64():
    """Float64 inside the test body; arrays made outside it stay float32."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def no_runtime_types():
    """Turns off the tests' jaxtyping/beartype annotation check for one test.

    It would reject a wrongly typed or shaped argument before jaxfeat's own check;
    users (without the hook) get jaxfeat's error, which is what such a test tests.
    """
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


@pytest.fixture
def x64_switch():
    """`jax.enable_x64`, for tests that compare both modes in one body."""
    return jax.enable_x64


@pytest.fixture(autouse=True)
def _clear_trace_counter():
    chex.clear_trace_counter()
    yield
