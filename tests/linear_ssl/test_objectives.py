"""JEPA and MAE objectives: stop-gradient semantics, population vs minibatch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import linear_ssl as ls
from jaxfeat._src.testing import assert_close


def _random_problem(key, d=3, depth=3):
    k1, k2, k3 = jax.random.split(key, 3)
    params = ls.init_orthogonal(k1, 0.5, d=d, depth=depth)
    params = params._replace(V=params.V + 0.1 * jax.random.normal(k2, (d, d)))
    A = jax.random.normal(k3, (2 * d, 2 * d))
    joint = A @ A.T / (2 * d) + 0.1 * jnp.eye(2 * d)
    cov = ls.covariances(joint[:d, :d], joint[d:, :d], joint[d:, d:])
    return params, cov


def _prefix_suffix_grads(params, grad_wbar):
    """Per-layer gradients from the end-to-end one by the chain rule."""
    W = params.W
    eye = jnp.eye(W.shape[-1], dtype=W.dtype)
    grads = []
    for a in range(W.shape[0]):
        below = eye
        for b in range(a):
            below = W[b] @ below
        above = eye
        for b in range(a + 1, W.shape[0]):
            above = W[b] @ above
        grads.append(above.T @ grad_wbar @ below.T)
    return jnp.stack(grads)


def _jepa_formula(params, cov):
    # Spec 1.2: G = V Wb Sxx - sg(Wb) Syx; grad_V = G Wb^T; grad_Wb = V^T G.
    Wb = ls.encoder_matrix(params)
    G = params.V @ Wb @ cov.xx - Wb @ cov.yx
    return _prefix_suffix_grads(params, params.V.T @ G), G @ Wb.T


def test_jepa_gradient_is_the_stop_gradient_semi_gradient(key, x64):
    params, cov = _random_problem(key)
    g = jax.grad(ls.jepa_population_loss)(params, cov)
    gW, gV = _jepa_formula(params, cov)
    assert_close(g.W, gW)
    assert_close(g.V, gV)


def test_removing_the_stop_gradient_fails_the_formula(key, x64):
    # Shows the test above can fail: the same loss with the target differentiated
    # (no stop-gradient) has a different encoder gradient.
    params, cov = _random_problem(key)

    def no_stop_grad(p):
        Wb, P = ls.encoder_matrix(p), p.V @ ls.encoder_matrix(p)
        return (
            0.5 * jnp.trace(P @ cov.xx @ P.T)
            - jnp.trace(P @ cov.yx.T @ Wb.T)
            + 0.5 * jnp.trace(Wb @ cov.yy @ Wb.T)
        )

    assert_close(no_stop_grad(params), ls.jepa_population_loss(params, cov))
    gW, _ = _jepa_formula(params, cov)
    wrong = jax.grad(no_stop_grad)(params).W
    assert float(jnp.max(jnp.abs(wrong - gW))) > 1e-3


def test_mae_gradient_matches_finite_differences(key, x64):
    params, cov = _random_problem(key)
    jax.test_util.check_grads(
        lambda p: ls.mae_population_loss(p, cov), (params,), order=2, modes=["rev"]
    )


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_minibatch_equals_population_at_empirical_covariances(key, x64, objective):
    params, cov = _random_problem(key)
    x, y = ls.sample_views(jax.random.fold_in(key, 1), cov, 64)
    emp = ls.empirical_covariances(x, y)
    batch_fn = ls.jepa_loss if objective == "jepa" else ls.mae_loss
    pop_fn = lambda p: ls.population_loss(p, emp, objective=objective)
    assert_close(batch_fn(params, x, y), pop_fn(params))
    assert_close(
        jax.grad(batch_fn)(params, x, y), jax.grad(pop_fn)(params), kind="factorization"
    )


def test_ema_target_with_decay_zero_is_the_online_target(key, x64):
    params, cov = _random_problem(key)
    g_online = jax.grad(ls.jepa_population_loss)(params, cov)
    g_target = jax.grad(ls.jepa_population_loss)(params, cov, target_W=params.W)
    assert_close(g_target, g_online)


def test_population_loss_matches_monte_carlo(key):
    # float32, n = 100k: relative error ~ c / sqrt(n) with c ~ 3 measured; 0.02 bound.
    params, cov = _random_problem(key)
    x, y = ls.sample_views(jax.random.fold_in(key, 2), cov, 100_000)
    for objective, fn in (("jepa", ls.jepa_loss), ("mae", ls.mae_loss)):
        mc = fn(params, x, y)
        pop = ls.population_loss(params, cov, objective=objective)
        np.testing.assert_allclose(mc, pop, rtol=0.02)


def test_bad_input(key):
    params, cov = _random_problem(key)
    with pytest.raises(ValueError, match="objective"):
        ls.population_loss(params, cov, objective="simclr")
    x = jnp.ones((4, 3))
    with pytest.raises((ValueError, TypeError), match="y"):
        ls.jepa_loss(params, x, jnp.ones((5, 3)))


def test_unbatched_x_is_named(key, no_runtime_types):
    """A 1-D or 3-D x blamed y ("y: expected shape (3,) ..."); x is the culprit."""
    params, _ = _random_problem(key)
    for fn in (ls.jepa_loss, ls.mae_loss):
        for shape in ((3,), (2, 4, 3)):
            with pytest.raises(
                ValueError, match=r"^x: expected a batch of shape \(n, d\)"
            ):
                fn(params, jnp.ones(shape), jnp.ones(shape))


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_population_gradients_equal_autodiff(key, x64, objective):
    params, cov = _random_problem(key, d=3, depth=4)
    for depth in (None, 2):
        auto = jax.grad(ls.population_loss)(
            params, cov, objective=objective, depth=depth
        )
        closed = ls.population_gradients(params, cov, objective=objective, depth=depth)
        assert_close(closed, auto)
    if objective == "jepa":  # with a separate (EMA) target encoder
        tgt = params.W * 1.1
        auto = jax.grad(ls.jepa_population_loss)(params, cov, target_W=tgt)
        closed = ls.population_gradients(params, cov, objective="jepa", target_W=tgt)
        assert_close(closed, auto)


def test_mismatched_model_inputs_raise_naming_the_argument(key, no_runtime_types):
    """A 3-layer target_W with 2-layer params was used as a 3-layer target (loss
    2.96 vs 0.26); a d that does not match, or NaN data, gave a bare dot_general
    error or a NaN loss."""
    params, cov = _random_problem(key)  # d = 3
    d, n_layers = params.V.shape[0], params.W.shape[0]
    wrong_target = jnp.ones((n_layers + 1, d, d))
    for call in (
        lambda: ls.population_loss(
            params, cov, objective="jepa", target_W=wrong_target
        ),
        lambda: ls.population_gradients(
            params, cov, objective="jepa", target_W=wrong_target
        ),
        lambda: ls.jepa_loss(
            params, jnp.ones((4, d)), jnp.ones((4, d)), target_W=wrong_target
        ),
    ):
        with pytest.raises(ValueError, match="^target_W: expected shape"):
            call()
    small = jax.tree_util.tree_map(lambda m: m[:2, :2], cov)
    with pytest.raises(ValueError, match="^cov.xx: expected shape"):
        ls.population_gradients(params, small, objective="mae")
    with pytest.raises(ValueError, match="^cov.yx: expected finite"):
        ls.mae_population_loss(params, cov._replace(yx=cov.yx.at[0, 1].set(jnp.nan)))
    with pytest.raises(ValueError, match="^x: expected a last axis of size d = 3"):
        ls.mae_loss(params, jnp.ones((4, 2)), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="^y: expected finite"):
        ls.mae_loss(params, jnp.ones((4, d)), jnp.full((4, d), jnp.nan))
    with pytest.raises(ValueError, match="^x: expected a last axis"):
        ls.predict(params, jnp.ones(d + 1))
    with pytest.raises(ValueError, match=r"^params.W: expected shape \(l, 3, 3\)"):
        ls.encoder_matrix(params._replace(W=params.W[:, :2]))
