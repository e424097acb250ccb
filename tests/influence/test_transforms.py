"""Every public function of `jaxfeat.influence`: eager == jit, vmap == loop, dtypes."""

import inspect

import jax
import jax.numpy as jnp
import pytest

from jaxfeat import influence, ntk
from jaxfeat._src.testing import cast_floats, check_transforms
from tests.influence._common import MLP, apply_fn

B = 2
LF = influence.example_loss_fn(apply_fn, "cross_entropy")
EK = influence.IHVPConfig(strategy="ekfac", damping=0.1)
EX = influence.IHVPConfig(strategy="exact", damping=0.1)
Y = jnp.array([0, 1, 2, 1, 0, 2])


def _u(*shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


def _p(seed=0):
    return ntk.init_mlp(jax.random.key(seed), MLP)


def _pb():
    return jax.vmap(lambda k: ntk.init_mlp(k, MLP))(
        jax.random.split(jax.random.key(1), B)
    )


def _state(cfg, model=MLP):
    return influence.fit_curvature(model, _p(), _u(6, 3), Y, cfg=cfg)


EK_AUTO = influence.IHVPConfig(strategy="ekfac")


def _factor_values(state):
    """Value-bearing outputs of a fit: per layer (Lambda, A, S) and the damping."""
    return [(f.lam, f.a, f.s) for f in state.factors], state.damping


def _keys():
    return jax.random.key(5), jax.random.split(jax.random.key(6), B)


def _plain(params, x):  # the MLP's layers as plain x @ W + b (standard scaling)
    h = jnp.tanh(x @ params[0].w + params[0].b)
    return h @ params[1].w + params[1].b


# name -> (fn, args, batched_args, in_axes, static kwargs)
CASES = {
    "example_loss_fn": lambda: (
        lambda p, x: influence.example_loss_fn(MLP, "cross_entropy")(p, x, Y[0]),
        (_p(), _u(3)),
        (_pb(), _u(B, 3)),
        None,
        {},
    ),
    "per_example_losses": lambda: (
        lambda p, x: influence.per_example_losses(LF, p, x, Y),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "per_example_grads": lambda: (
        lambda p, x: influence.per_example_grads(LF, p, x, Y),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "random_projection": lambda: (
        lambda k, g: influence.random_projection(k, g, 4),
        (_keys()[0], _u(5, 7)),
        (_keys()[1], _u(B, 5, 7)),
        None,
        {},
    ),
    "dense_grad_factors": lambda: (
        lambda p, x: influence.dense_grad_factors(p, x, Y, mlp=MLP),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "dense_matrix": lambda: (
        influence.dense_matrix,
        (_p()[0],),
        (_pb()[0],),
        None,
        {},
    ),
    "dense_from_matrix": lambda: (
        influence.dense_from_matrix,
        (_u(4, 4),),
        (_u(B, 4, 4),),
        None,
        {},
    ),
    "fit_curvature": lambda: (  # damping=None: derived from the fitted Lambda
        lambda p, x: _factor_values(influence.fit_curvature(MLP, p, x, Y, cfg=EK_AUTO)),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "ihvp": lambda: (
        lambda s, v: influence.ihvp(s, v),
        (_state(EK), _p(2)),
        (_state(EK), _pb()),
        (None, 0),
        {},
    ),
    "ihvp[found dense layers]": lambda: (  # EK-FAC of a plain callable's layers
        lambda s, v: influence.ihvp(s, v),
        (_state(EK, _plain), _p(2)),
        (_state(EK, _plain), _pb()),
        (None, 0),
        {},
    ),
    "adam_features": lambda: (
        lambda g, m: influence.adam_features(g, m, m**2),
        (_u(4, 5), _u(5, seed=1)),
        (_u(B, 4, 5), _u(B, 5, seed=1)),
        None,
        {},
    ),
    "less_scores": lambda: (
        lambda a, b: influence.less_scores(a, b, jnp.array([0, 1, 1]), 2),
        (_u(4, 5), _u(3, 5, seed=1)),
        (_u(B, 4, 5), _u(B, 3, 5, seed=1)),
        None,
        {},
    ),
    "l2_normalize": lambda: (
        influence.l2_normalize,
        (_u(4, 5),),
        (_u(B, 4, 5),),
        None,
        {},
    ),
    "whitened_features": lambda: (
        lambda a, b: influence.whitened_features(a, b),
        (_u(6, 3), _u(5, 3, seed=1)),
        (_u(B, 6, 3), _u(B, 5, 3, seed=1)),
        None,
        {},
    ),
    "ot_cost": lambda: (
        lambda a, b: influence.ot_cost(*influence.whitened_features(a, b)),
        (_u(6, 3), _u(5, 3, seed=1)),
        (_u(B, 6, 3), _u(B, 5, 3, seed=1)),
        None,
        {},
    ),
    "sinkhorn": lambda: (
        lambda c: influence.sinkhorn(jnp.abs(c), epsilon=0.1, n_iter=50),
        (_u(4, 5),),
        (_u(B, 4, 5),),
        None,
        {},
    ),
    "column_zscore": lambda: (
        influence.column_zscore,
        (_u(6, 4),),
        (_u(B, 6, 4),),
        None,
        {},
    ),
    "bids_select": lambda: (
        lambda a: influence.bids_select(a, jnp.array([0, 0, 1, 1]), 2, 3),
        (_u(6, 4),),
        (_u(B, 6, 4),),
        None,
        {},
    ),
    "low_rank_query": lambda: (
        lambda m: jnp.einsum("qor,qri->qoi", *influence.low_rank_query(m, 2)),
        (_u(3, 4, 5),),
        (_u(B, 3, 4, 5),),
        None,
        {},
    ),
    "pbrf_objective": lambda: (
        lambda p, e: influence.pbrf_objective(
            p,
            _p(),
            _u(6, 3),
            Y,
            _u(3),
            Y[0],
            e,
            model=MLP,
            loss="cross_entropy",
            damping=0.1,
        ),
        (_p(2), jnp.asarray(0.01)),
        (_pb(), jnp.array([0.01, -0.01])),
        None,
        {},
    ),
    "pbrf_response": lambda: (
        lambda e: influence.pbrf_response(
            _p(),
            _u(6, 3),
            Y,
            _u(3),
            Y[0],
            e,
            model=MLP,
            loss="cross_entropy",
            damping=0.5,
            n_steps=2,
        ),
        (jnp.asarray(0.01),),
        (jnp.array([0.01, -0.01]),),
        None,
        {},
    ),
}

NOT_TRANSFORMABLE = {
    "find_dense_layers": "returns static structure (leaf indices); runs abstractly",
    "tarot_select": "driver: data-dependent early stopping over ranks (Python loop)",
    "pairwise_scores": "driver: streams chunks (progress bar), places them on devices",
    "self_scores": "driver: streams chunks (progress bar), places them on devices",
}
NO_FLOAT_INPUT = {
    "fit_curvature",
    "ihvp",
    "ihvp[found dense layers]",
}  # their float64 check is below
INT_OUTPUT = {"bids_select"}  # indices; selection checked in test_selection


def test_every_public_function_has_a_case():
    public = {
        n
        for n in influence.__all__
        if callable(getattr(influence, n))
        and not inspect.isclass(getattr(influence, n))
    }
    assert not public - set(CASES) - set(NOT_TRANSFORMABLE)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_and_vmap(name):
    fn, args, batched, in_axes, kwargs = CASES[name]()
    check_transforms(fn, args, batched, in_axes=in_axes, static_kwargs=kwargs)


_cast = cast_floats


def _floats(out):
    return [
        leaf.dtype
        for leaf in jax.tree_util.tree_leaves(out)
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)
    ]


@pytest.mark.parametrize("name", sorted(set(CASES) - NO_FLOAT_INPUT - INT_OUTPUT))
def test_float64_in_float64_out(x64, name):
    fn, args, _, _, kwargs = CASES[name]()
    floats = _floats(fn(*_cast(args, jnp.float64), **kwargs))
    assert floats and all(d == jnp.float64 for d in floats), floats


def test_ihvp_and_scores_follow_input_dtype(x64):
    params, x = _cast(_p(), jnp.float64), _u(6, 3).astype(jnp.float64)
    state = influence.fit_curvature(MLP, params, x, Y, cfg=EK)
    assert all(d == jnp.float64 for d in _floats(state.factors))  # eigh in float64
    assert (
        _floats(influence.ihvp(state, _cast(_p(2), jnp.float32))) == [jnp.float32] * 4
    )
    s = influence.pairwise_scores(state, params, x[:2], Y[:2], x, Y)
    assert s.dtype == jnp.float64
