"""Empirical NTK: every algorithm against a naive Jacobian and the hand formula."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import ntk
from jaxfeat._src.testing import assert_close

METHODS = ["jacobian", "ntvp", "structured"]


def _setup(key, *, parameterization="ntk", widths=(16, 12), out_dim=3, act="relu"):
    cfg = ntk.MLPConfig(
        in_dim=5,
        widths=widths,
        out_dim=out_dim,
        activation=act,
        parameterization=parameterization,
        W_std=1.3,
        b_std=0.1,
    )
    k1, k2, k3 = jax.random.split(key, 3)
    params = ntk.init_mlp(k1, cfg)
    x1 = jax.random.normal(k2, (7, 5))
    x2 = jax.random.normal(k3, (4, 5))
    f = functools.partial(ntk.mlp_apply, cfg=cfg)
    taps = functools.partial(ntk.mlp_taps, cfg=cfg)
    return cfg, params, x1, x2, f, taps


def _naive(f, params, x1, x2):
    """Full Jacobians as flat matrices, contracted densely: (n, m, k, k)."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = lambda x: jax.jacrev(lambda p: f(unravel(p), x))(flat)  # (k, P)
    j1, j2 = jax.vmap(jac)(x1), jax.vmap(jac)(x2)
    return jnp.einsum("nap,mbp->nmab", j1, j2)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_all_methods_match_naive_float64(key, x64, parameterization, act):
    cfg, params, x1, x2, f, taps = _setup(
        key, parameterization=parameterization, act=act
    )
    full = _naive(f, params, x1, x2)
    traced = jnp.einsum("nmaa->nm", full) / cfg.out_dim
    for method in METHODS:
        for trace, expected in ((True, traced), (False, full)):
            fn = ntk.empirical_ntk_fn(
                f, method=method, trace_outputs=trace, structure=taps
            )
            np.testing.assert_allclose(
                fn(params, x1, x2),
                expected,
                rtol=1e-10,
                atol=1e-12,
                err_msg=f"{method} trace={trace}",
            )


def test_all_methods_match_naive_float32(key):
    # float32: reordered sums over ~400 parameters, relative 1e-5 (acceptance).
    cfg, params, x1, x2, f, taps = _setup(key)
    expected = _naive(f, params, x1, x2)
    scale = float(jnp.max(jnp.abs(expected)))
    for method in METHODS:
        got = ntk.empirical_ntk_fn(
            f, method=method, trace_outputs=False, structure=taps
        )(params, x1, x2)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)


def _assert_every_method_gives(cfg, params, x1, x2, want):
    for method in METHODS:
        got = ntk.empirical_ntk_fn(
            functools.partial(ntk.mlp_apply, cfg=cfg),
            method=method,
            structure=functools.partial(ntk.mlp_taps, cfg=cfg),
        )
        np.testing.assert_allclose(got(params, x1, x2), want, rtol=1e-10)


def test_one_hidden_layer_hand_formula(key, x64):
    # Spec A1: Theta = s^2/n sum_j h_j h'_j + b^2 + s^2/n sum_j v_j^2 g_j g'_j c
    # for the NTK parameterisation, with c = s^2 x.x'/d + b^2 and scalar output.
    d, n, sw, sb = 5, 64, 1.0, 0.1
    cfg = ntk.MLPConfig(in_dim=d, widths=(n,), out_dim=1, W_std=sw, b_std=sb)
    params = ntk.init_mlp(key, cfg)
    x1 = jax.random.normal(jax.random.fold_in(key, 1), (7, d))
    x2 = jax.random.normal(jax.random.fold_in(key, 2), (3, d))
    W, b = params[0]
    v = params[1].w[:, 0]
    u = lambda x: sw * x @ W / np.sqrt(d) + sb * b[None]
    h1, h2 = jax.nn.relu(u(x1)), jax.nn.relu(u(x2))
    g1, g2 = (u(x1) > 0).astype(float), (u(x2) > 0).astype(float)
    c = sw**2 * x1 @ x2.T / d + sb**2
    hand = sw**2 / n * h1 @ h2.T + sb**2 + sw**2 / n * (g1 * v[None] ** 2) @ g2.T * c
    _assert_every_method_gives(cfg, params, x1, x2, hand)


def test_auto_budgets_the_jacobians_of_both_inputs(key, monkeypatch):
    """`"auto"` counts x2's Jacobians (and both blocks when blocked), not x1's alone."""
    from jaxfeat.ntk import _empirical

    cfg, params, x1, x2, f, _ = _setup(key)
    calls, choose = [], _empirical.choose_method

    def spy(params, x_shape, n_out, **kw):
        calls.append((x_shape, choose(params, x_shape, n_out, **kw)))
        return calls[-1][1]

    monkeypatch.setattr(_empirical, "choose_method", spy)
    n_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    budget = x1.shape[0] * cfg.out_dim * n_params  # x1's Jacobians fit, x1's + x2's not
    ref = ntk.empirical_ntk_fn(f, method="jacobian")(params, x1, x2)
    for kw, x2_arg, rows, chosen in (
        ({}, x2, 7 + 4, "ntvp"),
        ({}, None, 7, "jacobian"),
        ({"block_size": 3}, x2, 2 * 3, "jacobian"),
        ({"block_size": 4}, x2, 2 * 4, "ntvp"),
    ):
        fn = ntk.empirical_ntk_fn(f, max_jacobian_floats=budget, **kw)
        out = fn(params, x1, x2_arg)
        assert calls[-1] == ((rows, 5), chosen), (kw, calls[-1])
        if x2_arg is not None:
            assert_close(out, ref)


def test_blocking_and_auto(key, x64):
    cfg, params, x1, x2, f, taps = _setup(key)
    ref = ntk.empirical_ntk_fn(f, method="jacobian")(params, x1, x2)
    for method in METHODS:
        blocked = ntk.empirical_ntk_fn(f, method=method, block_size=3, structure=taps)
        assert_close(blocked(params, x1, x2), ref)
    assert ntk.choose_method(params, x1.shape, 3, has_structure=True) == "structured"
    assert ntk.choose_method(params, x1.shape, 3, has_structure=False) == "jacobian"
    assert (
        ntk.choose_method(
            params, x1.shape, 3, has_structure=False, max_jacobian_floats=10
        )
        == "ntvp"
    )
    assert_close(ntk.empirical_ntk_fn(f)(params, x1, x2), ref)
    # x2 = None means x1 against itself, and the kernel is symmetric PSD
    k11 = ntk.empirical_ntk_fn(f, structure=taps)(params, x1)
    assert_close(k11, k11.T)
    assert float(jnp.min(jnp.linalg.eigvalsh(k11))) > -1e-10


def test_vmap_over_parameter_seeds_and_jit(key):
    cfg, params, x1, x2, f, taps = _setup(key)
    fn = ntk.empirical_ntk_fn(f, structure=taps)
    seeds = jax.vmap(lambda k: ntk.init_mlp(k, cfg))(jax.random.split(key, 3))
    batched = jax.jit(jax.vmap(fn, in_axes=(0, None, None)))(seeds, x1, x2)
    for i in range(3):
        one = jax.tree_util.tree_map(lambda a, i=i: a[i], seeds)
        assert_close(batched[i], fn(one, x1, x2))


def test_flax_nnx_and_linen_adapters(key, x64):
    import flax.linen as nn
    from flax import nnx

    cfg = ntk.MLPConfig(in_dim=5, widths=(8,), out_dim=2, parameterization="standard")
    params = ntk.init_mlp(key, cfg)
    x1 = jax.random.normal(jax.random.fold_in(key, 1), (4, 5))
    expected = ntk.empirical_ntk_fn(
        functools.partial(ntk.mlp_apply, cfg=cfg), method="jacobian"
    )(params, x1)

    class NNXMLP(nnx.Module):
        def __init__(self, rngs):
            kw = dict(rngs=rngs, param_dtype=jnp.float64, dtype=jnp.float64)
            self.l1 = nnx.Linear(5, 8, **kw)
            self.l2 = nnx.Linear(8, 2, **kw)

        def __call__(self, x):
            return self.l2(jax.nn.relu(self.l1(x)))

    model = NNXMLP(nnx.Rngs(0))
    model.l1.kernel[...], model.l1.bias[...] = params[0].w, params[0].b
    model.l2.kernel[...], model.l2.bias[...] = params[1].w, params[1].b
    apply_fn, p = ntk.from_nnx(model)
    got = ntk.empirical_ntk_fn(apply_fn, method="ntvp")(p, x1)
    np.testing.assert_allclose(got, expected, rtol=1e-10)

    class LinenMLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(8, param_dtype=jnp.float64)(x)
            return nn.Dense(2, param_dtype=jnp.float64)(nn.relu(h))

    mod = LinenMLP()
    variables = mod.init(jax.random.key(0), x1)
    variables = {
        "params": {
            "Dense_0": {"kernel": params[0].w, "bias": params[0].b},
            "Dense_1": {"kernel": params[1].w, "bias": params[1].b},
        }
    }
    apply_fn, p = ntk.from_linen(mod, variables)
    got = ntk.empirical_ntk_fn(apply_fn, method="jacobian")(p, x1)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_nan_input_with_structure_names_the_input_not_the_structure(key):
    """A NaN in x1[0] or a parameter made the taps check report the structure."""
    cfg, params, x1, x2, f, taps = _setup(key)
    fn = ntk.empirical_ntk_fn(f, method="structured", structure=taps)
    with pytest.raises(ValueError, match="^x1: expected finite"):
        fn(params, x1.at[0, 0].set(jnp.nan))
    bad = jax.tree_util.tree_map(lambda a: a.at[0].set(jnp.nan), params)
    with pytest.raises(ValueError, match="^params: expected finite"):
        fn(bad, x1)


def test_bad_input(key):
    cfg, params, x1, x2, f, taps = _setup(key)
    with pytest.raises(ValueError, match="method"):
        ntk.empirical_ntk_fn(f, method="fastest")
    with pytest.raises(ValueError, match="structure"):
        ntk.empirical_ntk_fn(f, method="structured")
    with pytest.raises(ValueError, match="x2"):
        ntk.empirical_ntk_fn(f)(params, x1, jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="block_size"):
        ntk.empirical_ntk_fn(f, block_size=0)
    # a parameter the taps do not see: the structured NTK would silently miss it
    extra = (*params, ntk.Dense(jnp.ones((1, 1)), jnp.ones((1,))))
    f2 = lambda p, x: f(p[:-1], x) + p[-1].b[0]
    taps2 = lambda p, x, deltas=None: taps(p[:-1], x, deltas=deltas)
    with pytest.raises(ValueError, match="structure"):
        ntk.empirical_ntk_fn(f2, method="structured", structure=taps2)(extra, x1)


def test_one_hidden_layer_hand_formula_standard(key, x64):
    # Spec A1, standard parameterisation (flax nn.Dense): z = x W + b with trainable
    # b (unit Jacobian), so Theta = sum_j h_j h'_j + 1 + sum_j v_j^2 g_j g'_j (x.x' + 1)
    d, n = 5, 64
    cfg = ntk.MLPConfig(
        in_dim=d, widths=(n,), out_dim=1, parameterization="standard", b_std=0.1
    )
    params = ntk.init_mlp(key, cfg)
    x1 = jax.random.normal(jax.random.fold_in(key, 1), (7, d))
    x2 = jax.random.normal(jax.random.fold_in(key, 2), (3, d))
    W, b = params[0]
    v = params[1].w[:, 0]
    u = lambda x: x @ W + b[None]
    h1, h2 = jax.nn.relu(u(x1)), jax.nn.relu(u(x2))
    g1, g2 = (u(x1) > 0).astype(float), (u(x2) > 0).astype(float)
    hand = h1 @ h2.T + 1 + (g1 * v[None] ** 2) @ g2.T * (x1 @ x2.T + 1)
    _assert_every_method_gives(cfg, params, x1, x2, hand)


def test_structure_must_match_f(key):
    # taps of a tanh network with a ReLU f (same parameter shapes) gave a kernel off
    # by ~0.6 without an error
    cfg, params, x1, x2, f, taps = _setup(key)
    tanh_taps = functools.partial(
        ntk.mlp_taps, cfg=dataclasses.replace(cfg, activation="tanh")
    )
    for method in ("auto", "structured"):
        fn = ntk.empirical_ntk_fn(f, method=method, structure=tanh_taps)
        with pytest.raises(ValueError, match="^structure: the layer taps' output"):
            fn(params, x1, x2)
    # taps of another bias scale give the same outputs when the biases are 0,
    # but a kernel off by s_b^2 per layer (1.2 against 0.02): the one-example
    # Jacobian kernel catches it
    cf = ntk.MLPConfig(in_dim=3, widths=(8,), out_dim=2, b_std=0.0)
    biased = functools.partial(ntk.mlp_taps, cfg=dataclasses.replace(cf, b_std=1.0))
    p0 = tuple(
        ntk.Dense(layer.w, jnp.zeros_like(layer.b)) for layer in ntk.init_mlp(key, cf)
    )
    fn = ntk.empirical_ntk_fn(
        functools.partial(ntk.mlp_apply, cfg=cf), method="structured", structure=biased
    )
    with pytest.raises(ValueError, match="^structure: the layer taps' NTK differs"):
        fn(p0, jax.random.normal(key, (4, 3)))
    # the same taps are ignored by the other algorithms
    ntk.empirical_ntk_fn(f, method="jacobian", structure=tanh_taps)(params, x1)
    with pytest.raises(ValueError, match="^x1: expected a batch"):
        ntk.empirical_ntk_fn(f)(params, jnp.ones(5))
    # NaN inputs gave a NaN kernel silently
    fn = ntk.empirical_ntk_fn(f, method="jacobian")
    with pytest.raises(ValueError, match="^x1: expected finite"):
        fn(params, x1.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="^x2: expected finite"):
        fn(params, x1, x2.at[1, 0].set(jnp.inf))
    bad = (ntk.Dense(params[0].w.at[0, 0].set(jnp.nan), params[0].b), *params[1:])
    with pytest.raises(ValueError, match="^params: expected finite"):
        fn(bad, x1)
    with pytest.raises(ValueError, match="^x2: expected a batch"):
        ntk.empirical_ntk_fn(f, method="jacobian")(params, x1, jnp.ones(5))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_structure_check_in_half_precision(key, dtype):
    """The taps-vs-f check compared half-precision kernels at float64's 1e-9: the
    two algorithms' round-off (up to 8e-3 of 1.5 in bfloat16) made valid taps fail
    for 4 of 5 seeds. It now runs in float32: valid taps pass, and the structured
    kernel equals a float32 Jacobian kernel to the dtype's rounding of O(1) sums
    (8 eps: 0.06 bfloat16, 8e-3 float16); taps of another network still fail."""
    cfg = ntk.MLPConfig(in_dim=8, widths=(64,), out_dim=2, b_std=0.1)
    f = functools.partial(ntk.mlp_apply, cfg=cfg)
    taps = functools.partial(ntk.mlp_taps, cfg=cfg)
    eps = float(jnp.finfo(dtype).eps)
    for seed in range(5):
        k1, k2 = jax.random.split(jax.random.fold_in(key, seed))
        params = ntk.init_mlp(k1, cfg, dtype=dtype)
        x = jax.random.normal(k2, (3, 8)).astype(dtype)
        got = ntk.empirical_ntk_fn(f, method="structured", structure=taps)(params, x)
        assert got.dtype == jnp.dtype(dtype)
        up = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), (params, x))
        want = ntk.empirical_ntk_fn(f, method="jacobian")(*up)
        scale = float(jnp.max(jnp.abs(want)))
        err = float(jnp.max(jnp.abs(got.astype(jnp.float32) - want)))
        assert err <= 8 * eps * scale, (seed, err, scale)
    tanh_f = functools.partial(
        ntk.mlp_apply, cfg=dataclasses.replace(cfg, activation="tanh")
    )
    with pytest.raises(ValueError, match="^structure: the layer taps' output"):
        ntk.empirical_ntk_fn(tanh_f, method="structured", structure=taps)(params, x)


def test_from_nnx_refuses_a_module_in_training_mode(key, x64):
    """In training mode BatchNorm normalised each single example by its own
    statistics (output 0.0 for every input) and the kernel call failed blaming x1."""
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(3, 4, rngs=rngs)
            self.bn = nnx.BatchNorm(4, rngs=rngs)
            self.drop = nnx.Dropout(0.1, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.bn(self.lin(x)))

    model = Net(nnx.Rngs(0))
    with pytest.raises(ValueError, match="^model: BatchNorm at bn is in training"):
        ntk.from_nnx(model)
    model.eval()
    apply_fn, params = ntk.from_nnx(model)
    x = jax.random.normal(key, (5, 3))
    out = jax.vmap(lambda xi: apply_fn(params, xi))(x)
    assert float(jnp.std(out[:, 0])) > 0  # a real function of the input again
    k = ntk.empirical_ntk_fn(apply_fn, method="ntvp")(params, x)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = jax.vmap(lambda xi: jax.jacrev(lambda t: apply_fn(unravel(t), xi))(flat))(x)
    want = jnp.einsum("nkp,mkp->nm", jac, jac) / 4  # traced over the 4 outputs
    # flax's float32 parameters: float32 round-off (measured 2.6e-7 relative)
    np.testing.assert_allclose(k, want, rtol=1e-5)


def test_mlp_config_list_widths_are_stored_as_a_tuple(key, no_runtime_types):
    """`widths=[4]` was kept as a list: the config was unhashable and failed as a
    static argument inside `jit` ("Non-hashable static arguments")."""
    listed = ntk.MLPConfig(in_dim=3, widths=[4, np.int64(2)], out_dim=2)
    assert listed == ntk.MLPConfig(in_dim=3, widths=(4, 2), out_dim=2)
    assert hash(listed) == hash(ntk.MLPConfig(in_dim=3, widths=(4, 2), out_dim=2))
    params = ntk.init_mlp(key, listed)
    x = jax.random.normal(key, (5, 3))
    k = jax.jit(ntk.empirical_ntk_fn(functools.partial(ntk.mlp_apply, cfg=listed)))
    want = ntk.empirical_ntk_fn(
        functools.partial(ntk.mlp_apply, cfg=listed), method="jacobian"
    )(params, x)
    assert_close(k(params, x), want)


def test_ntvp_memory_is_not_quadratic_in_outputs(key):
    """`ntvp` is what `auto` falls back to when the Jacobians do not fit, yet it
    stacked an identity basis of (m k)^2 cotangents: 105 MB for m = 512, k = 10
    with only 8 rows of x1. The cotangents are now built per column, and the
    traced kernel keeps only the diagonal output pairs. Measured by XLA's own
    buffer assignment (temporaries), against the old (m k)^2 floats."""
    cfg = ntk.MLPConfig(in_dim=4, widths=(8,), out_dim=10)
    f = functools.partial(ntk.mlp_apply, cfg=cfg)
    params = ntk.init_mlp(key, cfg)
    x1, x2 = jax.random.normal(key, (8, 4)), jnp.ones((512, 4))
    identity_bytes = (512 * 10) ** 2 * 4
    for traced in (True, False):
        fn = jax.jit(ntk.empirical_ntk_fn(f, method="ntvp", trace_outputs=traced))
        mem = fn.lower(params, x1, x2).compile().memory_analysis()
        if mem is None:
            pytest.skip("this backend reports no memory analysis")
        assert mem.temp_size_in_bytes < identity_bytes / 20, mem.temp_size_in_bytes
        want = ntk.empirical_ntk_fn(f, method="jacobian", trace_outputs=traced)
        assert_close(fn(params, x1, x2[:16]), want(params, x1, x2[:16]))


def test_float32_inputs_with_float64_params(x64):
    """The structured path kept the first layer's inputs in x's float32 while f ran
    in float64: a 1e-8 error, and the eager structure check (1e-9 in float64)
    refused the default call. Now equal to the float64 Jacobian NTK to 1e-12."""
    cfg = ntk.MLPConfig(in_dim=4, widths=(16, 16), out_dim=3, b_std=0.1)
    params = ntk.init_mlp(jax.random.key(0), cfg, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(10), (3, 4), jnp.float32)
    f = functools.partial(ntk.mlp_apply, cfg=cfg)
    taps = functools.partial(ntk.mlp_taps, cfg=cfg)
    ref = ntk.empirical_ntk_fn(f, method="jacobian")(params, x)
    got = ntk.empirical_ntk_fn(f, structure=taps)(params, x)  # auto: structured
    jit = jax.jit(ntk.empirical_ntk_fn(f, method="structured", structure=taps))
    for k in (got, jit(params, x)):
        assert k.dtype == jnp.float64
        np.testing.assert_allclose(k, ref, rtol=1e-12, atol=1e-12)
