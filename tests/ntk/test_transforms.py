"""Every public function of `jaxfeat.ntk`: eager == jit, vmap == loop, dtypes."""

import functools
import inspect

import jax
import jax.numpy as jnp
import pytest

from jaxfeat import ntk
from jaxfeat._src.testing import check_transforms

B = 3
CFG = ntk.MLPConfig(in_dim=4, widths=(8,), out_dim=2, b_std=0.1)
CFG1 = ntk.MLPConfig(in_dim=4, widths=(8,), out_dim=1, parameterization="standard")


def _u(*shape, seed=0, lo=-1.0, hi=1.0):
    return jax.random.uniform(jax.random.key(seed), shape, minval=lo, maxval=hi)


def _params(cfg=CFG, seed=0):
    return ntk.init_mlp(jax.random.key(seed), cfg)


def _params_b(cfg=CFG):
    return jax.vmap(lambda k: ntk.init_mlp(k, cfg))(
        jax.random.split(jax.random.key(1), B)
    )


def _keys():
    return jax.random.key(5), jax.random.split(jax.random.key(6), B)


EMB = ntk.make_embedding(jax.random.key(2), 4)
GRID = ntk.probe_grid(0.8, 0.9, n=6)
NTK_FN = ntk.empirical_ntk_fn(
    functools.partial(ntk.mlp_apply, cfg=CFG),
    structure=functools.partial(ntk.mlp_taps, cfg=CFG),
)
CFG_TANH = ntk.MLPConfig(in_dim=4, widths=(1,), activation="tanh", b_std=0.1)


def _ntk_case(**kw):
    fn = ntk.empirical_ntk_fn(functools.partial(ntk.mlp_apply, cfg=CFG), **kw)
    return lambda: (
        fn,
        (_params(), _u(5, 4), _u(3, 4, seed=1)),
        (_params_b(), _u(B, 5, 4), _u(B, 3, 4, seed=1)),
        None,
        {},
    )


def _quadrature_case(method):
    return lambda: (
        lambda x1, x2: ntk.analytic_kernels(CFG_TANH, x1, x2, method=method, n_nodes=8),
        (_u(3, 4), _u(2, 4, seed=1)),
        (_u(B, 3, 4), _u(B, 2, 4, seed=1)),
        None,
        {},
    )


CASES = {
    "init_mlp": lambda: (
        lambda k: ntk.init_mlp(k, CFG),
        (_keys()[0],),
        (_keys()[1],),
        None,
        {},
    ),
    "mlp_apply": lambda: (
        ntk.mlp_apply,
        (_params(), _u(4)),
        (_params_b(), _u(B, 4)),
        None,
        {"cfg": CFG},
    ),
    "mlp_taps": lambda: (
        lambda p, x: ntk.mlp_taps(p, x, CFG)[:2],
        (_params(), _u(4)),
        (_params_b(), _u(B, 4)),
        None,
        {},
    ),
    "empirical_ntk_fn": lambda: (
        NTK_FN,
        (_params(), _u(5, 4), _u(3, 4, seed=1)),
        (_params_b(), _u(B, 5, 4), _u(B, 3, 4, seed=1)),
        None,
        {},
    ),
    "analytic_kernels": lambda: (
        lambda x1, x2: ntk.analytic_kernels(CFG, x1, x2),
        (_u(5, 4), _u(3, 4, seed=1)),
        (_u(B, 5, 4), _u(B, 3, 4, seed=1)),
        None,
        {},
    ),
    "gradient_flow_mse": lambda: (
        lambda k, y, t: (
            ntk.gradient_flow_mse(k @ k.T + jnp.eye(4, dtype=k.dtype), y)(t).train
        ),
        (_u(4, 4), _u(4), jnp.asarray(0.5)),
        (_u(B, 4, 4), _u(B, 4), jnp.array([0.1, 0.5, 2.0])),
        None,
        {},
    ),
    # the other algorithms and paths behind the same public names
    "empirical_ntk_fn[jacobian]": _ntk_case(method="jacobian"),
    "empirical_ntk_fn[ntvp]": _ntk_case(method="ntvp"),
    "empirical_ntk_fn[blocked]": _ntk_case(method="jacobian", block_size=2),
    "analytic_kernels[polar]": _quadrature_case("polar"),
    "analytic_kernels[gauss_hermite]": _quadrature_case("gauss_hermite"),
    "gradient_flow_mse[k_test_train]": lambda: (
        lambda k, y, kt, t: (
            ntk.gradient_flow_mse(k @ k.T + jnp.eye(4, dtype=k.dtype), y)(
                t, k_test_train=kt
            ).test
        ),
        (_u(4, 4), _u(4), _u(2, 4, seed=2), jnp.asarray(0.5)),
        (_u(B, 4, 4), _u(B, 4), _u(B, 2, 4, seed=2), jnp.array([0.1, 0.5, 2.0])),
        None,
        {},
    ),
    "latent_means": lambda: (
        ntk.latent_means,
        (_u(3, lo=0.55, hi=0.95),),
        (_u(B, 3, lo=0.55, hi=0.95),),
        None,
        {},
    ),
    "make_embedding": lambda: (
        lambda k: ntk.make_embedding(k, 6),
        (_keys()[0],),
        (_keys()[1],),
        None,
        {},
    ),
    "embed": lambda: (
        lambda z, a: ntk.embed(z, EMB, a, 1.0),
        (_u(5, 2), jnp.asarray(2.0)),
        (_u(B, 5, 2), jnp.array([1.0, 2.0, 3.0])),
        None,
        {},
    ),
    "sample_latents": lambda: (
        lambda k, r: ntk.sample_latents(k, 8, rho_s=r, rho_c=0.9),
        (_keys()[0], jnp.asarray(0.7)),
        (_keys()[1], jnp.array([0.6, 0.7, 0.8])),
        None,
        {},
    ),
    "sample_shortcut_data": lambda: (
        lambda k, a: ntk.sample_shortcut_data(
            k, 8, EMB, rho_s=0.7, rho_c=0.9, alpha_s=a
        ),
        (_keys()[0], jnp.asarray(2.0)),
        (_keys()[1], jnp.array([1.0, 2.0, 3.0])),
        None,
        {},
    ),
    "probe_grid": lambda: (
        lambda r: ntk.probe_grid(r, 0.9, n=4),
        (jnp.asarray(0.7),),
        (jnp.array([0.6, 0.7, 0.8]),),
        None,
        {},
    ),
    "reliance": lambda: (
        lambda d: ntk.reliance(d, GRID),
        (_u(36),),
        (_u(B, 36),),
        None,
        {},
    ),
    "shortcut_bias": lambda: (
        lambda a, b: ntk.shortcut_bias(a, b, GRID),
        (_u(36), _u(36, seed=1)),
        (_u(B, 36), _u(B, 36, seed=1)),
        None,
        {},
    ),
    "reliance_of_line": lambda: (
        lambda a: ntk.reliance_of_line(a, 1.0, 0.5, 1.2),
        (jnp.asarray(0.7),),
        (jnp.array([-0.5, 0.7, 3.0]),),
        None,
        {},
    ),
    "kernel_shortcut_bias": lambda: (
        lambda y: ntk.kernel_shortcut_bias(
            jnp.eye(6, dtype=y.dtype) * 2.0,
            _u(36, 6, seed=3).astype(y.dtype),
            y,
            jnp.array([1.0, 10.0], y.dtype),
            GRID.astype(y.dtype),
            _u(36, seed=4).astype(y.dtype),
        ),
        (jnp.sign(_u(6)),),
        (jnp.sign(_u(B, 6)),),
        None,
        {},
    ),
    "lda_fit": lambda: (
        lambda x: ntk.lda_fit(x, jnp.repeat(jnp.array([1.0, -1.0]), 6)),
        (_u(12, 3),),
        (_u(B, 12, 3),),
        None,
        {},
    ),
    "lda_decision": lambda: (
        lambda w, x: ntk.lda_decision(ntk.LDA(w, jnp.asarray(0.1)), x),
        (_u(3), _u(5, 3)),
        (_u(B, 3), _u(B, 5, 3)),
        None,
        {},
    ),
    "train_classifier": lambda: (
        lambda k: (
            ntk.train_classifier(
                k,
                _u(16, 4),
                jnp.repeat(jnp.array([1.0, -1.0]), 8),
                _u(8, 4),
                jnp.repeat(jnp.array([1.0, -1.0]), 4),
                1e-2,
                net=CFG1,
                train=ntk.TrainConfig(steps=20, batch_size=4, eval_every=10),
            ).train_loss
        ),
        (_keys()[0],),
        (_keys()[1],),
        None,
        {},
    ),
}

NOT_TRANSFORMABLE = {
    "choose_method": "a Python-level decision on shapes",
    "from_nnx": "builds an adapter (its apply_fn is tested under jit and vmap)",
    "from_linen": "builds an adapter (its apply_fn is tested under jit and vmap)",
}
NO_FLOAT_INPUT = {
    "init_mlp",
    "make_embedding",
    "train_classifier",
    "sample_latents",
    "sample_shortcut_data",
}


def test_every_public_function_has_a_case():
    public = {
        n
        for n in ntk.__all__
        if callable(getattr(ntk, n)) and not inspect.isclass(getattr(ntk, n))
    }
    assert not public - set(CASES) - set(NOT_TRANSFORMABLE)


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


@pytest.mark.parametrize("name", sorted(set(CASES) - NO_FLOAT_INPUT))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_output_dtype_follows_input(x64, name, dtype):
    fn, args, _, _, kwargs = CASES[name]()
    out = fn(*_cast(args, dtype), **kwargs)
    floats = [
        leaf.dtype
        for leaf in jax.tree_util.tree_leaves(out)
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    assert floats and all(d == dtype for d in floats), floats
