"""Deep linear encoder and its inits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import linear_ssl as ls
from jaxfeat._src.testing import assert_close


def test_aligned_init_scale(x64):
    p = ls.init_aligned(1e-3, d=3, depth=3)
    assert_close(ls.encoder_matrix(p), 1e-3 * jnp.eye(3))
    assert_close(p.V, 0.1 * jnp.eye(3))
    assert float(ls.imbalance(p)) == 0.0


def test_orthogonal_init_is_balanced_and_orthogonal(key, x64):
    p = ls.init_orthogonal(key, 1e-2, d=4, depth=3)
    s = 1e-2 ** (1 / 3)
    for W in p.W:
        assert_close(W @ W.T, s**2 * jnp.eye(4), kind="factorization")
    assert float(ls.imbalance(p)) < 1e-14
    sv = jnp.linalg.svd(ls.encoder_matrix(p), compute_uv=False)
    assert_close(sv, jnp.full(4, 1e-2), kind="factorization")


def test_depth_mask_equals_shallower_stack(key, x64):
    deep = ls.init_orthogonal(key, 1e-2, d=3, depth=2, max_depth=5)
    assert_close(deep.W[2:], jnp.broadcast_to(jnp.eye(3), (3, 3, 3)))
    shallow = ls.Params(W=deep.W[:2], V=deep.V)
    assert_close(ls.encoder_matrix(deep, 2), ls.encoder_matrix(shallow))
    assert_close(ls.imbalance(deep, 2), ls.imbalance(shallow))
    x = jnp.arange(3.0)
    assert_close(ls.predict(deep, x, 2), shallow.V @ shallow.W[1] @ shallow.W[0] @ x)


def test_traced_depth_init_matches_static():
    f = jax.vmap(lambda L: ls.init_aligned(1e-2, d=2, depth=L, max_depth=4))
    batched = f(jnp.arange(1, 5))
    for i, L in enumerate(range(1, 5)):
        one = ls.init_aligned(1e-2, d=2, depth=L, max_depth=4)
        assert_close(batched.W[i], one.W)
        np.testing.assert_allclose(
            ls.encoder_matrix(one, L), 1e-2 * np.eye(2), rtol=1e-5
        )


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(eps=0.0), ValueError, "eps"),
        (dict(eps=float("nan")), ValueError, "eps"),
        (dict(depth=0), ValueError, "depth"),
        (dict(depth=3, max_depth=2), ValueError, "depth"),
    ],
)
def test_init_bad_input(kwargs, exc, match):
    args = dict(eps=1e-2, d=2, depth=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ls.init_aligned(args.pop("eps"), **args)


def test_concrete_scalar_depth_needs_no_max_depth():
    """A NumPy or JAX integer depth is as good as a Python int (it raised a
    TypeError asking for max_depth); the same stack as depth=3."""
    want = ls.init_aligned(1e-2, d=2, depth=3)
    for depth in (np.int64(3), jnp.asarray(3)):
        got = ls.init_aligned(1e-2, d=2, depth=depth)
        np.testing.assert_array_equal(got.W, want.W)
        np.testing.assert_array_equal(got.V, want.V)


def test_traced_depth_needs_max_depth():
    with pytest.raises(TypeError, match="max_depth"):
        jax.vmap(lambda L: ls.init_aligned(1e-2, d=2, depth=L))(jnp.arange(1, 3))


@pytest.mark.parametrize("init", ["aligned", "orthogonal"])
def test_non_scalar_eps_raises(key, init, no_runtime_types):
    """eps of shape (depth,) used to broadcast over the layer stack and build
    unbalanced parameters (W[0] = 0.1 I, W[1] = 0.01 I for eps = [1e-2, 1e-4])."""
    eps = jnp.array([1e-2, 1e-4])
    with pytest.raises(ValueError, match=r"^eps: expected shape \(\)"):
        if init == "aligned":
            ls.init_aligned(eps, d=2, depth=2)
        else:
            ls.init_orthogonal(key, eps, d=2, depth=2)


def test_encode_and_predict_take_batches_of_rows():
    """`encode` computed W̄ @ x, so an (n, d) batch with n = d was transformed by
    columns (silently wrong) and n != d crashed in dot_general. Rows are examples:
    the batch equals the per-example map and the hand product (exact integers)."""
    p = ls.Params(
        W=jnp.array([[[1.0, 2.0], [0.0, 1.0]]]), V=jnp.array([[0.0, 1.0], [1.0, 0.0]])
    )
    X = jnp.array([[1.0, 5.0], [2.0, 7.0]])
    np.testing.assert_array_equal(ls.encode(p, X), [[11.0, 5.0], [16.0, 7.0]])
    np.testing.assert_array_equal(
        ls.encode(p, X), jax.vmap(lambda x: ls.encode(p, x))(X)
    )
    np.testing.assert_array_equal(ls.predict(p, X), [[5.0, 11.0], [7.0, 16.0]])
    X3 = jnp.ones((3, 4, 2))
    assert ls.predict(p, X3).shape == (3, 4, 2)
    np.testing.assert_array_equal(ls.predict(p, X3)[2, 1], ls.predict(p, X3[2, 1]))


def test_array_depth_is_refused_by_model_functions():
    """depth=[1, 2] on a two-layer stack was compared elementwise with the layer
    index and returned the full product; a scalar per call (vmap for several)."""
    p = ls.init_aligned(0.5, d=2, depth=2)
    with pytest.raises(ValueError, match="^depth: expected a scalar"):
        ls.encoder_matrix(p, jnp.array([1, 2]))
    many = jax.vmap(lambda L: ls.encoder_matrix(p, L))(jnp.array([1, 2]))
    np.testing.assert_allclose(many[0], p.W[0], rtol=1e-6)
    np.testing.assert_allclose(many[1], p.W[1] @ p.W[0], rtol=1e-6)
