"""Numerical assertions for tests, with tolerances looked up by error source.

| kind            | float32 rtol / atol | float64 rtol / atol | error source |
|-----------------|---------------------|---------------------|--------------|
| `identity`      | 1e-5 / 1e-6         | 1e-12 / 1e-14       | the same math with ops reordered (jit fusion, vmap) |
| `factorization` | 1e-3 / 1e-5         | 1e-10 / 1e-12       | backward error x condition number (cond <= 1e3) |

`discretization` and `monte_carlo` errors are checked with `assert_rel_fro` and a
bound the test states (C * step, c / sqrt(N)).
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# (rtol, atol) per kind and per dtype of `expected`.
TOLERANCES = {
    # jit fusion / vmap reorder floating-point ops: a few ulps, amplified by sums.
    "identity": {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-14)},
    # backward-stable factorizations: error ~ eps * cond, cond <= 1e3 in tests.
    "factorization": {np.float32: (1e-3, 1e-5), np.float64: (1e-10, 1e-12)},
}


def _dtype_key(x) -> type:
    dtype = np.asarray(x).dtype
    if dtype == np.float64 or dtype == np.complex128:
        return np.float64
    return np.float32


def tolerance(kind: str, expected) -> tuple[float, float]:
    """Returns `(rtol, atol)` for `kind` at the dtype of `expected`."""
    if kind not in TOLERANCES:
        raise ValueError(f"kind: expected one of {sorted(TOLERANCES)}; got {kind!r}")
    return TOLERANCES[kind][_dtype_key(expected)]


def assert_close(actual, expected, *, kind: str = "identity", err_msg: str = ""):
    """Asserts two pytrees agree leaf by leaf within the `kind` tolerances."""
    a_leaves, a_def = jax.tree_util.tree_flatten(actual)
    e_leaves, e_def = jax.tree_util.tree_flatten(expected)
    if a_def != e_def:
        raise AssertionError(f"tree structures differ: {a_def} vs {e_def}")
    for a, e in zip(a_leaves, e_leaves, strict=True):
        rtol, atol = tolerance(kind, e)
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(e), rtol=rtol, atol=atol, err_msg=err_msg
        )


def rel_fro(actual, expected) -> float:
    """Relative Frobenius error `||actual - expected|| / ||expected||`."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(a - e) / np.linalg.norm(e))


def assert_rel_fro(actual, expected, *, tol: float, err_msg: str = ""):
    """Asserts the relative Frobenius error is at most `tol`."""
    err = rel_fro(actual, expected)
    if not err <= tol:
        raise AssertionError(
            f"relative Frobenius error {err:.3g} > {tol:.3g} {err_msg}"
        )


def check_transforms(
    fn: Callable,
    args: Sequence,
    batched_args: Sequence,
    *,
    in_axes: Sequence[int | None] | None = None,
    kind: str = "identity",
    static_kwargs: dict | None = None,
):
    """Checks `fn` agrees eagerly, under `jit`, and under `vmap` against a loop.

    Args:
      fn: the public function.
      args: one set of positional arguments.
      batched_args: positional arguments where the entries with `in_axes` 0 carry a
        leading batch axis (pytrees are batched leaf-wise).
      in_axes: per-argument vmap axes (0 or None); default: all 0.
      kind: tolerance row.
      static_kwargs: keyword arguments passed unchanged (hashable configs, methods).
    """
    kw = dict(static_kwargs or {})
    f = lambda *a: fn(*a, **kw)
    eager = f(*args)
    jitted = jax.jit(f)(*args)
    assert_close(jitted, eager, kind=kind, err_msg="jit vs eager")
    in_axes = tuple(in_axes) if in_axes is not None else (0,) * len(batched_args)
    batched = jax.vmap(f, in_axes=in_axes)(*batched_args)
    sizes = {
        jax.tree_util.tree_leaves(a)[0].shape[0]
        for a, ax in zip(batched_args, in_axes, strict=True)
        if ax == 0
    }
    (n,) = sizes
    outs = []
    for i in range(n):
        one = [
            jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], a) if ax == 0 else a
            for a, ax in zip(batched_args, in_axes, strict=True)
        ]
        outs.append(f(*one))
    looped = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)
    assert_close(batched, looped, kind=kind, err_msg="vmap vs loop")
    return eager


def cast_floats(tree, dtype):
    """`tree` with every floating-point `jax.Array` leaf cast to `dtype`."""

    def leaf(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree_util.tree_map(leaf, tree)


def cpu_devices_env(n_devices: int) -> dict:
    """`os.environ` for a subprocess with `n_devices` forced CPU devices.

    Keeps the caller's other XLA flags (the tests' fast-compile ones) and replaces
    the device count.
    """
    import os

    env = dict(os.environ, JAX_PLATFORMS="cpu")
    kept = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    kept.append(f"--xla_force_host_platform_device_count={n_devices}")
    env["XLA_FLAGS"] = " ".join(kept)
    return env


def run_on_cpu_devices(
    script: str, out_path, n_devices: int, *, timeout: int = 300
) -> dict:
    """Runs `python -c script out_path` with `n_devices` forced CPU devices.

    The device count is fixed when JAX initialises, so each count needs its own
    process. Returns the arrays the script saved to `out_path` with `np.savez`;
    raises `subprocess.TimeoutExpired` after `timeout` seconds (a hang fails).
    """
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-c", script, str(out_path)],
        env=cpu_devices_env(n_devices),
        check=True,
        capture_output=True,
        timeout=timeout,
    )
    return dict(np.load(out_path))


def fast_compile_xla_flags() -> str:
    """`compile_options.FAST_COMPILE` as `XLA_FLAGS`, for test suites and smoke runs.

    They compile many small programs and run each briefly: on 2 cores the suite took
    791 s instead of 1399 s (see `compile_options` for what each option does); the
    smoke reproduce's 107 claims measure the same as at -O0 alone. XLA aborts on a
    flag it does not know, so all but -O0 are probed in a subprocess first (a newer
    jaxlib may drop one). Costs one interpreter start (about 2 s); call it once and
    pass the result through `XLA_FLAGS`.
    """
    import os
    import subprocess
    import sys

    from jaxfeat._src.compile_options import FAST_COMPILE

    flags = [f"--{k}={str(v).lower()}" for k, v in FAST_COMPILE.items()]
    o0 = [f for f in flags if f.startswith("--xla_backend_optimization_level=")]
    probe = subprocess.run(
        [sys.executable, "-c", "import jax.numpy as j; j.ones(2).block_until_ready()"],
        env=dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu"),
        capture_output=True,
        timeout=300,
    )
    return " ".join(flags if probe.returncode == 0 else o0)
