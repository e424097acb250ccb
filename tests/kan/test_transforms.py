"""Every public function of `jaxfeat.kan`: eager == jit, vmap == loop, dtypes."""

import inspect

import jax
import jax.numpy as jnp
import pytest

from jaxfeat import kan
from jaxfeat._src.testing import cast_floats, check_transforms

B = 2
CFG = kan.KANConfig(widths=(3, 4, 2), grid_size=3, order=2)
GRIDS = kan.kan_grids(CFG)
TC = kan.KANTrainConfig(epochs=2, batch_size=4)


def _u(*shape, seed=0, lo=-1.0, hi=1.0):
    return jax.random.uniform(jax.random.key(seed), shape, minval=lo, maxval=hi)


def _p(seed=0):
    return kan.init_kan(jax.random.key(seed), CFG)


def _pb():
    return jax.vmap(lambda k: kan.init_kan(k, CFG))(
        jax.random.split(jax.random.key(1), B)
    )


def _keys():
    return jax.random.key(5), jax.random.split(jax.random.key(6), B)


Y = jnp.array([0, 1, 1, 0, 1, 0])
G1 = kan.uniform_grid(3, 3, 2)
PRED = lambda xi: jnp.stack([xi[0] - xi[1] ** 2, xi[2]])

# name -> (fn, args, batched_args, in_axes, static kwargs)
CASES = {
    # the grid's ends are traced arguments of uniform_grid itself
    "uniform_grid": lambda: (
        lambda r: kan.uniform_grid(2, 3, 2, (r[0], r[1]), dtype=r.dtype),
        (jnp.array([-1.0, 1.0]),),
        (jnp.array([[-1.0, 1.0], [0.5, 3.7]]),),
        None,
        {},
    ),
    "bspline_basis": lambda: (
        lambda x: kan.bspline_basis(x, G1.astype(x.dtype), 2),
        (_u(5, 3),),
        (_u(B, 5, 3),),
        None,
        {},
    ),
    "spline_values": lambda: (
        lambda x, c: kan.spline_values(x, G1.astype(x.dtype), c, 2),
        (_u(5, 3), _u(2, 3, 5, seed=1)),
        (_u(B, 5, 3), _u(B, 2, 3, 5, seed=1)),
        None,
        {},
    ),
    "fit_coefficients": lambda: (
        lambda x, y: kan.fit_coefficients(x, y, G1.astype(x.dtype), 2),
        (_u(12, 3), _u(12, 3, 2, seed=1)),
        (_u(B, 12, 3), _u(B, 12, 3, 2, seed=1)),
        None,
        {},
    ),
    "grid_from_samples": lambda: (
        lambda x: kan.grid_from_samples(x, 3, 2),
        (_u(12, 3),),
        (_u(B, 12, 3),),
        None,
        {},
    ),
    "init_kan": lambda: (
        lambda k: kan.init_kan(k, CFG),
        (_keys()[0],),
        (_keys()[1],),
        None,
        {},
    ),
    "kan_apply": lambda: (
        lambda p, x: kan.kan_apply(p, x, grids=GRIDS, cfg=CFG),
        (_p(), _u(3)),
        (_pb(), _u(B, 3)),
        None,
        {},
    ),
    "layer_edges": lambda: (
        lambda p, x: kan.layer_edges(p[0], GRIDS[0].astype(x.dtype), x, 2),
        (_p(), _u(3)),
        (_pb(), _u(B, 3)),
        None,
        {},
    ),
    "kan_layer_inputs": lambda: (
        lambda p, x: kan.kan_layer_inputs(p, x, grids=GRIDS, cfg=CFG),
        (_p(), _u(3)),
        (_pb(), _u(B, 3)),
        None,
        {},
    ),
    "update_kan_grids": lambda: (
        lambda p, x: kan.update_kan_grids(p, x, grids=GRIDS, cfg=CFG)[:2],
        (_p(), _u(10, 3)),
        (_pb(), _u(B, 10, 3)),
        None,
        {},
    ),
    "kan_loss": lambda: (
        lambda o: kan.kan_loss(o, Y, "classification"),
        (_u(6, 2),),
        (_u(B, 6, 2),),
        None,
        {},
    ),
    "kan_regularization": lambda: (
        lambda p, x: kan.kan_regularization(p, x, grids=GRIDS, cfg=CFG),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "train_kan": lambda: (
        lambda k, p: kan.train_kan(
            k, p, _u(6, 3), Y, grids=GRIDS, cfg=CFG, train_cfg=TC
        ),
        (_keys()[0], _p()),
        (_keys()[1], _pb()),
        None,
        {},
    ),
    "first_layer_edges": lambda: (
        lambda p, x: kan.first_layer_edges(p, x, grids=GRIDS, cfg=CFG),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "kan_l1": lambda: (
        lambda p, x: kan.kan_l1(p, x, grids=GRIDS, cfg=CFG, center=True),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "kan_l1[coef]": lambda: (
        lambda p, x: kan.kan_l1(p, x, grids=GRIDS, cfg=CFG, variant="coef"),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "kan_l1[plain]": lambda: (
        lambda p, x: kan.kan_l1(p, x, grids=GRIDS, cfg=CFG, center=False),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "top_k": lambda: (
        lambda s: kan.top_k(s, 2),
        (_u(5),),
        (_u(B, 5, seed=3),),
        None,
        {},
    ),
    "kan_l2": lambda: (
        lambda p, x: kan.kan_l2(p, x, grids=GRIDS, cfg=CFG),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "kan_si": lambda: (
        lambda p, x: kan.kan_si(p, x, grids=GRIDS, cfg=CFG),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "kan_ko": lambda: (
        lambda p, x: kan.kan_ko(p, x, Y, grids=GRIDS, cfg=CFG, task="classification"),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "kan_ko_losses": lambda: (
        lambda p, x: kan.kan_ko_losses(
            p, x, Y, grids=GRIDS, cfg=CFG, task="classification"
        ),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "kan_attr": lambda: (
        lambda p, x: kan.kan_attr(p, x, grids=GRIDS, cfg=CFG),
        (_p(), _u(6, 3)),
        (_pb(), _u(B, 6, 3)),
        None,
        {},
    ),
    "permutation_importance": lambda: (
        lambda k, x: kan.permutation_importance(
            k, PRED, x, Y, task="classification", n_repeats=2
        ),
        (_keys()[0], _u(6, 3)),
        (_keys()[1], _u(B, 6, 3)),
        None,
        {},
    ),
    "gradient_saliency": lambda: (
        lambda x: kan.gradient_saliency(PRED, x),
        (_u(6, 3),),
        (_u(B, 6, 3),),
        None,
        {},
    ),
}

NOT_TRANSFORMABLE = {
    "kan_grids": "no array argument: a function of the static config only",
    "kfold_indices": "NumPy fold bookkeeping",
    "crossval_feature_scores": "driver: folds in one sharded vmap (vs a loop)",
    "jaccard_stability": "NumPy set arithmetic on selected indices",
    "redundancy": "NumPy correlation summary",
    "sklearn_scores": "scikit-learn estimators",
    "to_pure": "reads an NNX module's variables",
    "kan_module": "builds an NNX module (its forward pass is kan_apply)",
}
NO_FLOAT_INPUT = {"init_kan", "train_kan", "permutation_importance"}
NO_FLOAT_OUTPUT = {"top_k"}  # integer indices


def test_every_public_function_has_a_case():
    public = {
        n
        for n in kan.__all__
        if callable(getattr(kan, n)) and not inspect.isclass(getattr(kan, n))
    }
    assert not public - set(CASES) - set(NOT_TRANSFORMABLE)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_and_vmap(name):
    fn, args, batched, in_axes, kwargs = CASES[name]()
    check_transforms(fn, args, batched, in_axes=in_axes, static_kwargs=kwargs)


_cast = cast_floats


@pytest.mark.parametrize("name", sorted(set(CASES) - NO_FLOAT_INPUT - NO_FLOAT_OUTPUT))
def test_float64_in_float64_out(x64, name):
    fn, args, _, _, kwargs = CASES[name]()
    out = fn(*_cast(args, jnp.float64), **kwargs)
    floats = [
        leaf.dtype
        for leaf in jax.tree_util.tree_leaves(out)
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    assert floats and all(d == jnp.float64 for d in floats), floats
