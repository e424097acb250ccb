"""`_src.linalg`: the plain `jnp.linalg` values and derivatives, looped under `vmap`."""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

from jaxfeat._src import linalg


def _spd(key, batch, n):
    a = jax.random.normal(key, (*batch, n, n))
    return a @ jnp.swapaxes(a, -1, -2) + n * jnp.broadcast_to(jnp.eye(n), a.shape)


A = _spd(jax.random.key(0), (3,), 5)
B = jax.random.normal(jax.random.key(1), (3, 5))
CASES = {
    "eigh": (linalg.eigh, jnp.linalg.eigh, (A,)),
    "lstsq": (linalg.lstsq, lambda a, b: jnp.linalg.lstsq(a, b)[0], (A, B)),
    "solve": (linalg.solve, jnp.linalg.solve, (A, B)),
    "cholesky": (linalg.cholesky, jnp.linalg.cholesky, (A,)),
    "solve_lower": (
        linalg.solve_lower,
        lambda a, b: jsl.solve_triangular(a, b, lower=True),
        (jnp.tril(A), B),
    ),
    "svd": (linalg.svd, lambda a: jnp.linalg.svd(a, full_matrices=False), (A,)),
    "qr": (linalg.qr, jnp.linalg.qr, (A,)),
}


def _loss(f):
    # sin: a nonlinear read-out of every output, so every derivative term counts.
    return lambda *a: sum(jnp.sum(jnp.sin(x)) for x in jax.tree_util.tree_leaves(f(*a)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_and_gradients_equal_the_plain_functions(name):
    safe, plain, args = CASES[name]
    # The same LAPACK routine on the same matrices: equal up to float32 round-off
    # of a different call order (the looped form calls it once per element).
    tol = dict(rtol=1e-5, atol=1e-5)
    for got, want in zip(
        jax.tree_util.tree_leaves(jax.jit(jax.vmap(safe))(*args)),
        jax.tree_util.tree_leaves(jax.vmap(plain)(*args)),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, **tol)
    one = tuple(a[0] for a in args)
    for got, want in zip(
        jax.tree_util.tree_leaves(safe(*one)),
        jax.tree_util.tree_leaves(plain(*one)),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(
        jax.grad(_loss(safe))(*one), jax.grad(_loss(plain))(*one), **tol
    )
    np.testing.assert_allclose(
        jax.vmap(jax.grad(_loss(safe)))(*args),
        jax.vmap(jax.grad(_loss(plain)))(*args),
        **tol,
    )


def test_unbatched_operands_and_nested_vmap():
    got = jax.vmap(linalg.solve, in_axes=(0, None))(A, B[0])
    want = jax.vmap(jnp.linalg.solve, in_axes=(0, None))(A, B[0])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got = jax.vmap(linalg.solve, in_axes=(None, 0))(A[0], B)
    want = jax.vmap(jnp.linalg.solve, in_axes=(None, 0))(A[0], B)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    a2 = _spd(jax.random.key(2), (2, 3), 4)
    w = jax.vmap(jax.vmap(linalg.eigh))(a2)[0]
    np.testing.assert_allclose(w, jnp.linalg.eigh(a2)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not linalg.AFFECTED, reason="this jaxlib batches LAPACK safely")
def test_vmapped_lapack_calls_are_unbatched_on_cpu():
    a2 = _spd(jax.random.key(3), (2, 3), 4)
    hlo = jax.jit(jax.vmap(jax.vmap(linalg.eigh))).lower(a2).compile().as_text()
    calls = [ln for ln in hlo.splitlines() if "custom-call(" in ln and "syevd" in ln]
    assert calls, "expected a LAPACK eigh call"
    for ln in calls:  # one (4, 4) matrix per call: nothing for jaxlib to split
        assert "f32[4,4]" in ln and "f32[2," not in ln and "f32[3," not in ln, ln
    plain = jax.jit(jax.vmap(jax.vmap(jnp.linalg.eigh))).lower(a2).compile().as_text()
    assert "f32[2,3,4,4]" in plain  # the check above can fail: plain eigh batches


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("0.9.2", False),
        ("0.10.0", True),
        ("0.10.2", True),
        ("0.10.2.dev20261101", True),
        ("0.11.0", True),
        ("0.11.1", False),
        ("0.11.2", False),
        ("1.0.0", False),
    ],
)
def test_affected_jaxlib_versions(version, affected):
    assert linalg._affected(version) is affected
