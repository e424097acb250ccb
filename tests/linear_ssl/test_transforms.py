"""Every public function of `jaxfeat.linear_ssl`: eager == jit, vmap == Python loop."""

import inspect

import jax
import jax.numpy as jnp
import pytest

from jaxfeat import linear_ssl as ls
from jaxfeat._src.testing import check_transforms

B = 3  # batch size of every vmap case


def _cov(lam=(1.0, 1.25), rho=(1.0, 0.5)):
    return ls.population_covariances(ls.mode_spec(jnp.array(lam), jnp.array(rho)))


def _covs():
    lam = jnp.array([[1.0, 1.2], [0.8, 1.5], [1.1, 0.9]])
    rho = jnp.array([[0.9, 0.5], [0.7, 0.6], [1.0, 0.4]])
    return jax.vmap(lambda a, b: ls.population_covariances(ls.mode_spec(a, b)))(
        lam, rho
    )


def _params(depth=2):
    return ls.init_orthogonal(jax.random.key(0), 0.3, d=2, depth=depth)


def _params_batch():
    return jax.vmap(lambda k: ls.init_orthogonal(k, 0.3, d=2, depth=2))(
        jax.random.split(jax.random.key(1), B)
    )


def _vec(*shape, lo=0.5, hi=1.0, seed=0):
    return jax.random.uniform(jax.random.key(seed), shape, minval=lo, maxval=hi)


def _xy(batch=False):
    shape = (B, 8, 2) if batch else (8, 2)
    return _vec(*shape, lo=-1, hi=1, seed=1), _vec(*shape, lo=-1, hi=1, seed=2)


def _keys():
    return jax.random.key(3), jax.random.split(jax.random.key(4), B)


# name -> () -> (fn, args, batched_args, in_axes, static kwargs)
CASES = {
    "mode_spec": lambda: (
        ls.mode_spec,
        (_vec(2), _vec(2)),
        (_vec(B, 2), _vec(B, 2, seed=1)),
        None,
        {},
    ),
    "population_covariances": lambda: (
        ls.population_covariances,
        (ls.mode_spec(_vec(2), _vec(2)),),
        (jax.vmap(ls.mode_spec)(_vec(B, 2), _vec(B, 2, seed=1)),),
        None,
        {},
    ),
    "covariances": lambda: (
        ls.covariances,
        tuple(_cov()),
        tuple(_covs()),
        None,
        {},
    ),
    "static_two_view": lambda: (
        ls.static_two_view,
        (_vec(2), _vec(2)),
        (_vec(B, 2), _vec(B, 2, seed=1)),
        None,
        {},
    ),
    "dynamic_ar1": lambda: (
        ls.dynamic_ar1,
        (_vec(2, hi=0.9), _vec(2), _vec(2)),
        (_vec(B, 2, hi=0.9), _vec(B, 2), _vec(B, 2, seed=2)),
        None,
        {},
    ),
    "generalized_modes": lambda: (
        ls.generalized_modes,
        (_cov(),),
        (_covs(),),
        None,
        {},
    ),
    "diagonalization_defect": lambda: (
        ls.diagonalization_defect,
        (ls.Covariances(_cov().xx, _cov().yx + 0.1, _cov().yy),),
        (_covs(),),
        None,
        {},
    ),
    "sample_views": lambda: (
        lambda k, c: ls.sample_views(k, c, 16),
        (_keys()[0], _cov()),
        (_keys()[1], _covs()),
        None,
        {},
    ),
    "sample_static_two_view": lambda: (
        lambda k, g, n: ls.sample_static_two_view(k, g, n, 16),
        (_keys()[0], _vec(2), _vec(2)),
        (_keys()[1], _vec(B, 2), _vec(B, 2)),
        None,
        {},
    ),
    "sample_dynamic_ar1": lambda: (
        lambda k, a: ls.sample_dynamic_ar1(k, a, _vec(2), _vec(2), 16),
        (_keys()[0], _vec(2, hi=0.9)),
        (_keys()[1], _vec(B, 2, hi=0.9)),
        None,
        {},
    ),
    "empirical_covariances": lambda: (
        ls.empirical_covariances,
        _xy(),
        _xy(batch=True),
        None,
        {},
    ),
    "init_aligned": lambda: (
        lambda e, L: ls.init_aligned(e, d=2, depth=L, max_depth=3),
        (jnp.asarray(0.01), jnp.asarray(2)),
        (jnp.array([0.01, 0.02, 0.05]), jnp.array([1, 2, 3])),
        None,
        {},
    ),
    "init_orthogonal": lambda: (
        lambda k, e: ls.init_orthogonal(k, e, d=2, depth=2),
        (_keys()[0], jnp.asarray(0.01)),
        (_keys()[1], jnp.array([0.01, 0.02, 0.05])),
        None,
        {},
    ),
    "encoder_matrix": lambda: (
        ls.encoder_matrix,
        (_params(),),
        (_params_batch(),),
        None,
        {},
    ),
    "encode": lambda: (
        ls.encode,
        (_params(), _vec(2)),
        (_params_batch(), _vec(B, 2)),
        None,
        {},
    ),
    "predict": lambda: (
        ls.predict,
        (_params(), _vec(2)),
        (_params_batch(), _vec(B, 2)),
        None,
        {},
    ),
    "imbalance": lambda: (
        ls.imbalance,
        (_params(),),
        (_params_batch(),),
        None,
        {},
    ),
    "jepa_population_loss": lambda: (
        ls.jepa_population_loss,
        (_params(), _cov()),
        (_params_batch(), _covs()),
        None,
        {},
    ),
    "mae_population_loss": lambda: (
        ls.mae_population_loss,
        (_params(), _cov()),
        (_params_batch(), _covs()),
        None,
        {},
    ),
    "population_loss": lambda: (
        ls.population_loss,
        (_params(), _cov()),
        (_params_batch(), _covs()),
        None,
        {"objective": "jepa"},
    ),
    "population_gradients": lambda: (
        ls.population_gradients,
        (_params(), _cov()),
        (_params_batch(), _covs()),
        None,
        {"objective": "mae"},
    ),
    "jepa_loss": lambda: (
        ls.jepa_loss,
        (_params(), *_xy()),
        (_params_batch(), *_xy(batch=True)),
        None,
        {},
    ),
    "mae_loss": lambda: (
        ls.mae_loss,
        (_params(), *_xy()),
        (_params_batch(), *_xy(batch=True)),
        None,
        {},
    ),
    "init_gd": lambda: (ls.init_gd, (_params(),), (_params_batch(),), None, {}),
    "simulate_gd": lambda: (
        ls.simulate_gd,
        (ls.init_gd(_params()), _cov(), jnp.asarray(0.05)),
        (jax.vmap(ls.init_gd)(_params_batch()), _covs(), jnp.array([0.05, 0.1, 0.02])),
        None,
        {"cfg": ls.GDConfig(objective="jepa", n_steps=20, log_every=5)},
    ),
    "mode_rhs": lambda: (
        ls.mode_rhs,
        (_vec(2), _vec(2), _vec(2), _vec(2)),
        (_vec(B, 2), _vec(B, 2), _vec(B, 2), _vec(B, 2)),
        None,
        {"depth": 3, "objective": "mae"},
    ),
    "end_to_end_rhs": lambda: (
        ls.end_to_end_rhs,
        (_vec(2, hi=0.3), _vec(2), _vec(2), jnp.asarray(3)),
        (_vec(B, 2, hi=0.3), _vec(B, 2), _vec(B, 2), jnp.array([1, 2, 3])),
        None,
        {"objective": "jepa"},
    ),
    "time_scale": lambda: (
        lambda L: ls.time_scale(L, "gradient_flow") * jnp.ones(()),
        (jnp.asarray(3),),
        (jnp.array([1, 2, 3]),),
        None,
        {},
    ),
    "integrate_rk4": lambda: (
        lambda y0, dt: ls.integrate_rk4(lambda y: -y, y0, dt=dt, n_steps=20),
        (_vec(2), jnp.asarray(0.1)),
        (_vec(B, 2), jnp.array([0.1, 0.05, 0.2])),
        None,
        {},
    ),
    "integrate_mode": lambda: (
        lambda lam, rho: ls.integrate_mode(
            lam, rho, 1e-2, 2, objective="mae", t_max=5.0, n_steps=50
        ),
        (_vec(2), _vec(2)),
        (_vec(B, 2), _vec(B, 2, seed=1)),
        None,
        {},
    ),
    "first_crossing_time": lambda: (
        ls.first_crossing_time,
        (jnp.linspace(0, 1, 11), jnp.linspace(0, 1, 11) ** 2, jnp.asarray(0.3)),
        (
            jnp.linspace(0, 1, 11),
            jnp.linspace(0, 1, 11)[None] ** jnp.array([[1.0], [2.0], [3.0]]),
            jnp.array([0.2, 0.3, 0.5]),
        ),
        (None, 0, 0),
        {},
    ),
    "fixed_point": lambda: (
        ls.fixed_point,
        (_vec(2), jnp.asarray(3)),
        (_vec(B, 2), jnp.array([1, 2, 3])),
        None,
        {"objective": "mae"},
    ),
    "critical_time": lambda: (
        lambda lam, rho, L: ls.critical_time(
            lam, rho, 1e-3, L, objective="jepa", max_depth=4
        ),
        (_vec(2), _vec(2), jnp.asarray(3)),
        (_vec(B, 2), _vec(B, 2, seed=1), jnp.array([1, 2, 4])),
        None,
        {},
    ),
    "learning_curve": lambda: (
        lambda lam, rho: ls.learning_curve(
            lam, rho, 1e-3, 2, objective="mae", n_points=8
        ),
        (_vec(2), _vec(2)),
        (_vec(B, 2), _vec(B, 2, seed=1)),
        None,
        {},
    ),
    "critical_time_laurent": lambda: (
        lambda lam, rho, L: ls.critical_time_laurent(lam, rho, 1e-3, L, max_depth=4),
        (_vec(2), _vec(2), jnp.asarray(3)),
        (_vec(B, 2), _vec(B, 2, seed=1), jnp.array([1, 2, 4])),
        None,
        {},
    ),
}

NOT_TRANSFORMABLE = {
    "run_gd": "Python driver of jitted `simulate_gd` chunks with a progress bar",
    "sweep_gd": "is itself the sharded, jitted vmap of `simulate_gd`",
}


NO_FLOAT_INPUT = {"time_scale": "maps an integer depth to an integer or 1.0"}


def _public_functions():
    return sorted(
        name
        for name in ls.__all__
        if inspect.isfunction(getattr(ls, name))
        or type(getattr(ls, name)).__name__ == "PjitFunction"
    )


def test_every_public_function_has_a_transform_case():
    missing = set(_public_functions()) - set(CASES) - set(NOT_TRANSFORMABLE)
    assert not missing, f"no transform case for {sorted(missing)}"
    assert not (set(CASES) | set(NOT_TRANSFORMABLE)) - set(ls.__all__)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_and_vmap(name):
    fn, args, batched, in_axes, kwargs = CASES[name]()
    check_transforms(fn, args, batched, in_axes=in_axes, static_kwargs=kwargs)


def _cast(tree, dtype):
    def leaf(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree_util.tree_map(leaf, tree)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_output_dtype_follows_input(x64, name, dtype):
    # Under x64, float32 inputs give float32 outputs and float64 give float64.
    if name in NO_FLOAT_INPUT:
        pytest.skip(NO_FLOAT_INPUT[name])
    fn, args, _, _, kwargs = CASES[name]()
    out = fn(*_cast(args, dtype), **kwargs)
    floats = [
        leaf.dtype
        for leaf in jax.tree_util.tree_leaves(out)
        if jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    assert floats and all(d == dtype for d in floats), floats
