"""Sizes that fix shapes or loop counts must be integers: a float such as 2.0
passed the old check and then failed inside a trace naming no argument (or, for
`tarot_select`, ran). Each call below must raise `TypeError` naming it."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import influence, kan, linear_ssl, ntk

CFG = ntk.MLPConfig(in_dim=3, widths=(4,), out_dim=2)


def _mlp():
    params = ntk.init_mlp(jax.random.key(0), CFG)
    x = jax.random.normal(jax.random.key(1), (6, 3))
    return params, x, jnp.array([0, 1, 0, 1, 1, 0])


CASES = {
    "k": lambda p, x, y: influence.random_projection(
        jax.random.key(0),
        influence.per_example_grads(
            influence.example_loss_fn(CFG, "cross_entropy"), p, x, y
        ),
        2.0,
    ),
    "rank": lambda *_: influence.low_rank_query(jnp.ones((2, 3, 4)), 1.0),
    "budget": lambda *_: influence.bids_select(
        jnp.ones((5, 2)), jnp.array([0, 1]), 2, 2.0
    ),
    "n_tasks": lambda *_: influence.less_scores(
        jnp.ones((5, 2)), jnp.ones((2, 2)), jnp.array([0, 1]), 2.0
    ),
    "n_iter": lambda *_: influence.sinkhorn(jnp.ones((3, 3)), n_iter=5.0),
    "n_folds": lambda *_: influence.tarot_select(
        jax.random.key(0), jnp.eye(4), jnp.eye(4), n_folds=2.0
    ),
    "block_size": lambda p, x, _: ntk.empirical_ntk_fn(
        functools.partial(ntk.mlp_apply, cfg=CFG), block_size=2.0
    )(p, x),
    "widths": lambda *_: ntk.MLPConfig(in_dim=3, widths=(4.0,)),
    "epochs": lambda *_: kan.KANTrainConfig(epochs=3.0),
    "n_steps": lambda *_: linear_ssl.GDConfig(n_steps=True),
    "d": lambda *_: linear_ssl.init_aligned(0.1, d=2.0, depth=2),
    "n_nodes": lambda *_: linear_ssl.critical_time(
        1.0, 0.5, 1e-3, 2, objective="mae", method="quadrature", n_nodes=2.5
    ),
    "n_points": lambda *_: linear_ssl.learning_curve(
        1.0, 0.5, 1e-3, 2, objective="jepa", n_points=4.0
    ),
}


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("d", lambda: linear_ssl.init_orthogonal(jax.random.key(0), 0.1, d=0, depth=2)),
        (
            "n_points",
            lambda: linear_ssl.learning_curve(
                1.0, 0.5, 1e-3, 2, objective="jepa", n_points=0
            ),
        ),
    ],
)
def test_sizes_below_their_minimum_raise(name, call):
    """d = 0 returned empty parameters and n_points = 0 empty curves silently."""
    with pytest.raises(ValueError, match=rf"^{name}: expected an integer >="):
        call()


@pytest.mark.parametrize("name", sorted(CASES))
def test_float_or_bool_counts_raise_naming_the_argument(name, no_runtime_types):
    with pytest.raises(TypeError, match=rf"^{name}: expected a Python int"):
        CASES[name](*_mlp())


def test_integer_like_counts_are_accepted(no_runtime_types):
    """NumPy and concrete 0-d JAX integers are integers."""
    for k in (np.int64(2), jnp.asarray(2)):
        got = influence.sinkhorn(jnp.ones((3, 3)), n_iter=k)[0]
        want = influence.sinkhorn(jnp.ones((3, 3)), n_iter=2)[0]
        np.testing.assert_array_equal(got, want)


def test_bool_depth_raises(no_runtime_types):
    """depth=True passed as depth 1 (np.mod(True, 1) == 0)."""
    with pytest.raises(TypeError, match="^depth: expected an integer"):
        linear_ssl.critical_time(1.0, 0.5, 1e-3, True, objective="jepa")
    with pytest.raises(TypeError, match="^depth: expected an integer"):
        linear_ssl.init_aligned(0.1, d=2, depth=np.bool_(True))
