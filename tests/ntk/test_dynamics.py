"""Closed-form kernel gradient flow against explicit gradient descent."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import ntk
from jaxfeat._src.testing import assert_close, rel_fro


def test_matches_gradient_descent_of_linearised_network(key, x64):
    # A wide MLP linearised at its init: f_lin(p) = f(p0) + J (p - p0). GD on
    # (1/2n) sum |f_lin - y|^2 with step eta is forward Euler on the flow the closed
    # form solves, so the outputs agree up to O(eta): measured rel. error 0.4 eta t/t.
    cfg = ntk.MLPConfig(in_dim=4, widths=(256,), out_dim=2, b_std=0.1)
    p0 = ntk.init_mlp(key, cfg)
    f = functools.partial(ntk.mlp_apply, cfg=cfg)
    x = jax.random.normal(jax.random.fold_in(key, 1), (12, 4))
    xt = jax.random.normal(jax.random.fold_in(key, 2), (5, 4))
    y = jax.random.normal(jax.random.fold_in(key, 3), (12, 2))
    batch = lambda p, xs: jax.vmap(f, in_axes=(None, 0))(p, xs)

    def f_lin(p, xs):
        dp = jax.tree_util.tree_map(lambda a, b: a - b, p, p0)
        out, tangent = jax.jvp(lambda q: batch(q, xs), (p0,), (dp,))
        return out + tangent

    loss = lambda p: 0.5 * jnp.mean(jnp.sum((f_lin(p, x) - y) ** 2, -1))
    ntk_fn = ntk.empirical_ntk_fn(
        f, trace_outputs=False, structure=functools.partial(ntk.mlp_taps, cfg=cfg)
    )
    # full (n, m, k, k) kernels as (n k, m k) matrices
    to_mat = lambda k4: jnp.transpose(k4, (0, 2, 1, 3)).reshape(
        k4.shape[0] * 2, k4.shape[1] * 2
    )
    k_tt, k_st = to_mat(ntk_fn(p0, x)), to_mat(ntk_fn(p0, xt, x))
    # The loss averages over n examples but the flow has n k rows: lr = k scales the
    # rate to eta * lambda / n at time t = eta * steps.
    predict = ntk.gradient_flow_mse(k_tt, y.reshape(-1), lr=2.0)
    errors = []
    for eta, steps in ((0.02, 1500), (0.01, 3000)):

        def step(p, _, eta=eta):
            g = jax.grad(loss)(p)
            return jax.tree_util.tree_map(lambda a, b: a - eta * b, p, g), None

        p_end, _ = jax.lax.scan(step, p0, length=steps)
        pred = predict(
            eta * steps,
            k_test_train=k_st,
            fx_train_0=batch(p0, x).reshape(-1),
            fx_test_0=batch(p0, xt).reshape(-1),
        )
        errors.append(
            (
                rel_fro(pred.train[0], f_lin(p_end, x).reshape(-1)),
                rel_fro(pred.test[0], f_lin(p_end, xt).reshape(-1)),
            )
        )
    # Euler's O(eta) global error: measured ~1e-3 at eta = 0.01, halving with eta
    assert max(errors[1]) < 0.01
    ratio = errors[0][1] / errors[1][1]
    assert 1.6 < ratio < 2.4, ratio


def test_limits_and_scalar_targets(key, x64):
    a = jax.random.normal(key, (6, 6))
    k = a @ a.T + 0.1 * jnp.eye(6)
    y = jax.random.normal(jax.random.fold_in(key, 1), (6,))
    predict = ntk.gradient_flow_mse(k, y)
    out = predict(jnp.array([0.0, 1e6]))
    assert_close(out.train[0], jnp.zeros(6))  # f_0 = 0
    np.testing.assert_allclose(out.train[1], y, atol=1e-8)  # interpolates at t -> oo
    kst = jax.random.normal(jax.random.fold_in(key, 2), (3, 6))
    test = predict(1e6, k_test_train=kst).test[0]
    np.testing.assert_allclose(test, kst @ jnp.linalg.solve(k, y), rtol=1e-6)
    # a zero eigenvalue uses the t lr / n limit, no NaN
    sing = ntk.gradient_flow_mse(jnp.zeros((3, 3)), jnp.ones(3))
    res = sing(2.0, k_test_train=jnp.ones((1, 3)))
    assert bool(jnp.all(jnp.isfinite(res.test)))


def test_bad_input(key):
    with pytest.raises((ValueError, TypeError), match="y_train"):
        ntk.gradient_flow_mse(jnp.eye(3), jnp.ones(4))
    with pytest.raises(ValueError, match="lr"):
        ntk.gradient_flow_mse(jnp.eye(3), jnp.ones(3), lr=-1.0)
    with pytest.raises(ValueError, match="k_train_train"):
        ntk.gradient_flow_mse(jnp.eye(3).at[0, 0].set(jnp.nan), jnp.ones(3))


def test_bad_input_values(key):
    k = 2.0 * jnp.eye(3)
    y = jnp.ones(3)
    predict = ntk.gradient_flow_mse(k, y)
    for bad_t in (-100.0, jnp.nan, jnp.array([1.0, -1.0])):
        with pytest.raises(ValueError, match="^t: expected"):
            predict(bad_t)
    with pytest.raises(ValueError, match="^t: expected a scalar"):
        predict(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="^y_train: expected finite"):
        ntk.gradient_flow_mse(k, y.at[0].set(jnp.nan))
    # (jaxtyping's hook, active in tests, rejects the 0-D array first: TypeError)
    with pytest.raises((ValueError, TypeError), match="y_train"):
        ntk.gradient_flow_mse(k, jnp.array(1.0))
    with pytest.raises(ValueError, match="^k_train_train: expected a symmetric"):
        ntk.gradient_flow_mse(jnp.array([[1.0, 5.0], [0.0, 1.0]]), jnp.ones(2))
    with pytest.raises(ValueError, match="^k_train_train: expected a positive semi"):
        ntk.gradient_flow_mse(jnp.array([[1.0, 0.0], [0.0, -5.0]]), jnp.ones(2))
    with pytest.raises((ValueError, TypeError), match="k_train_train"):
        ntk.gradient_flow_mse(jnp.ones((3, 3, 3)), y)
    for bad in (jnp.ones((2, 4)), jnp.ones((3,))):
        with pytest.raises(ValueError, match="^k_test_train: expected shape"):
            predict(1.0, k_test_train=bad)
    with pytest.raises(ValueError, match="^fx_train_0: expected initial outputs"):
        predict(1.0, fx_train_0=jnp.ones(5))
    with pytest.raises(ValueError, match="^fx_train_0: expected finite"):
        predict(1.0, fx_train_0=jnp.nan)
    with pytest.raises(ValueError, match="^fx_test_0: expected initial outputs"):
        predict(1.0, k_test_train=jnp.ones((2, k.shape[0])), fx_test_0=jnp.ones(7))
    grid = ntk.probe_grid(0.8, 0.9, n=2)
    # (in tests jaxtyping checks the shared axis sizes first; without it, ValueError)
    with pytest.raises((ValueError, TypeError), match="k_grid_train"):
        ntk.kernel_shortcut_bias(k, jnp.ones((4, 2)), y, jnp.ones(1), grid, grid[:, 0])
    # round-off is not an error: a float32 Gram matrix with eigenvalues ~ -eps |K|
    a = jax.random.normal(key, (40, 3))
    gram = a @ a.T  # rank 3: 37 eigenvalues are round-off around 0
    out = ntk.gradient_flow_mse(gram, jnp.ones(40))(1.0).train
    assert bool(jnp.all(jnp.isfinite(out)))


def test_psd_tolerance_is_sqrt_eps_of_the_largest_eigenvalue():
    """The documented bound: eigenvalues >= -sqrt(eps) max|eig| pass (float32:
    sqrt(eps) = 3.5e-4), twice that below is refused."""
    tol = float(np.sqrt(np.finfo(np.float32).eps))
    ok = jnp.diag(jnp.array([2.0, -0.5 * tol * 2.0]))
    assert bool(
        jnp.all(jnp.isfinite(ntk.gradient_flow_mse(ok, jnp.ones(2))(1.0).train))
    )
    with pytest.raises(ValueError, match="^k_train_train: expected a positive semi"):
        ntk.gradient_flow_mse(jnp.diag(jnp.array([2.0, -2 * tol * 2.0])), jnp.ones(2))


def test_float32_relu_ntk_with_duplicate_inputs_is_accepted():
    # The ReLU kernels' arccos near correlation 1 carries ~sqrt(eps) error in
    # float32: duplicate rows gave eigenvalues of -1.4e-5 |K|, which a tolerance of
    # n eps rejected on 3 of 20 seeds. The flow must accept all of them.
    cfg = ntk.MLPConfig(in_dim=5, widths=(64, 64, 64), W_std=1.4, b_std=0.1)
    for s in range(20):
        x = jax.random.normal(jax.random.key(s), (12, 5), jnp.float32)
        x = x.at[1].set(x[0]).at[3].set(x[2] * (1 + 1e-7))
        k = ntk.analytic_kernels(cfg, x).ntk
        out = ntk.gradient_flow_mse(k, jnp.ones(12), diag_reg=1e-3)(1.0).train
        assert bool(jnp.all(jnp.isfinite(out)))


def test_integer_labels_keep_fractional_initial_outputs(key):
    """Integer +-1 labels cast the initial outputs to int: f(0) was [0, 0] instead
    of fx_train_0 = [0.3, 0.7], and the whole flow was shifted."""
    k = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    f0, ft0 = jnp.array([0.3, 0.7]), jnp.array([0.1, -0.2, 0.4])
    kt = jax.random.uniform(key, (3, 2))
    ints = ntk.gradient_flow_mse(k, jnp.array([1, -1]))
    floats = ntk.gradient_flow_mse(k, jnp.array([1.0, -1.0]))
    t = jnp.array([0.0, 0.5, 3.0])
    got = ints(t, k_test_train=kt, fx_train_0=f0, fx_test_0=ft0)
    want = floats(t, k_test_train=kt, fx_train_0=f0, fx_test_0=ft0)
    np.testing.assert_allclose(got.train[0], f0, rtol=1e-6)
    np.testing.assert_allclose(got.test[0], ft0, rtol=1e-6)
    np.testing.assert_allclose(got.train, want.train, rtol=1e-6)
    np.testing.assert_allclose(got.test, want.test, rtol=1e-6)


def test_kernel_shortcut_bias_refuses_zero_one_labels(key):
    """0/1 labels gave a different bias (0.182 vs 0.098) with no error."""
    k = 2.0 * jnp.eye(4)
    grid = ntk.probe_grid(0.9, 0.9)
    kg = jax.random.uniform(key, (grid.shape[0], 4))
    with pytest.raises(ValueError, match="^y_train: expected labels in"):
        ntk.kernel_shortcut_bias(
            k, kg, jnp.array([0.0, 1.0, 0.0, 1.0]), jnp.ones(1), grid, grid[:, 0]
        )
