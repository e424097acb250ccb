"""Shared fixtures: a per-test key, float64 opt-in, strict rank promotion, --runslow."""

import os
import zlib

# The suite is dominated by XLA compile time on small programs; LLVM's -O0 compiles
# them several times faster (random-number programs: 1.6 s -> 0.2 s) and runs them
# fast enough. Set before jax initialises its backend; an explicit XLA_FLAGS wins.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import chex  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")  # no silent broadcasting


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
def x64_switch():
    """`jax.enable_x64`, for tests that compare both modes in one body."""
    return jax.enable_x64


@pytest.fixture(autouse=True)
def _clear_trace_counter():
    chex.clear_trace_counter()
    yield
