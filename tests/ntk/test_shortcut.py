"""The shortcut framework: generator, probe grid, reliance, LDA, bias."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erfinv

from jaxfeat import ntk


def test_latent_means():
    rho = jnp.array([0.6, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(
        ntk.latent_means(rho), [0.2533, 0.5244, 0.8416, 1.2816], atol=1e-4
    )
    np.testing.assert_allclose(
        ntk.latent_means(rho), np.sqrt(2) * erfinv(2 * rho - 1), rtol=1e-6
    )


def test_generator_moments(key):
    # Monte Carlo, n = 1e5: a proportion's sd is <= 0.0016; +-0.01 is ~6 sd (spec C3).
    z, y = ntk.sample_latents(key, 100_000, rho_s=0.7, rho_c=0.9, sigma_sc=0.6)
    assert float(jnp.mean(y)) == 0.0  # exactly balanced
    acc = jnp.mean(jnp.where(z >= 0, 1.0, -1.0) == y[:, None], axis=0)
    np.testing.assert_allclose(acc, [0.7, 0.9], atol=0.01)
    mu = ntk.latent_means(jnp.array([0.7, 0.9]))
    resid = z - y[:, None] * mu[None]
    np.testing.assert_allclose(jnp.corrcoef(resid.T)[0, 1], 0.6, atol=0.01)
    emb = ntk.make_embedding(key, 100)
    np.testing.assert_allclose(emb.directions @ emb.directions.T, np.eye(2), atol=1e-6)
    loose = ntk.make_embedding(key, 100, orthonormal=False)
    np.testing.assert_allclose(jnp.linalg.norm(loose.directions, axis=1), 1, rtol=1e-6)


def test_embedding_linear_and_nested(key):
    emb = ntk.make_embedding(key, 20)
    z = jax.random.normal(key, (5, 2))
    x = ntk.embed(z, emb, 3.0, 1.0)
    np.testing.assert_allclose(
        x @ emb.directions.T, z * jnp.array([[3.0, 1.0]]), rtol=1e-5, atol=1e-5
    )
    nested = ntk.make_embedding(key, 20, nesting=(2, 0))
    xn = ntk.embed(z, nested, 3.0, 1.0)
    # the core is still linear; the shortcut went through 2 tanh layers
    np.testing.assert_allclose(
        xn - ntk.embed(z.at[:, 0].set(0.0), nested, 3.0, 1.0),
        ntk.embed(z.at[:, 1].set(0.0), nested, 3.0, 1.0)
        - ntk.embed(jnp.zeros_like(z), nested, 3.0, 1.0),
        atol=1e-5,
    )
    assert not np.allclose(xn, x)


def test_reliance_sanity():
    # spec C1: sign(z_s) -> +1, sign(z_c) -> -1, a constant -> 0
    grid = ntk.probe_grid(0.8, 0.9)
    assert grid.shape == (900, 2)
    assert float(ntk.reliance(grid[:, 0], grid)) == 1.0
    assert float(ntk.reliance(grid[:, 1], grid)) == -1.0
    assert float(ntk.reliance(jnp.ones(900), grid)) == 0.0


@pytest.mark.parametrize("rho_s", [0.6, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("ratio", [0.3, 0.9, 2.0, 4.0])  # r = 1 puts ties on the grid
def test_line_classifier_matches_closed_form(rho_s, ratio):
    # acceptance: grid reliance of a straight-line classifier = closed form to 0.02
    grid = ntk.probe_grid(rho_s, 0.9)
    mu_s, mu_c = ntk.latent_means(rho_s), ntk.latent_means(0.9)
    a = ratio * mu_c / mu_s  # so that r = a mu_s / (b mu_c) = ratio with b = 1
    got = ntk.reliance(a * grid[:, 0] + grid[:, 1], grid)
    expected = ntk.reliance_of_line(a, 1.0, mu_s, mu_c)
    assert abs(float(got) - float(expected)) <= 0.02


def test_lda_reference_and_alpha_invariance(key):
    # spec C2 (sigma_sc = 0): R_LDA ~ -0.96, -0.83, -0.57, 0.00 (+-0.07 here for one
    # draw of n = 3200: the ratio of the two LDA weights has ~2% sampling error)
    emb = ntk.make_embedding(key, 100)
    expected = {0.6: -0.961, 0.7: -0.833, 0.8: -0.569, 0.9: 0.0}
    for rho_s, r in expected.items():
        rel = []
        for alpha in (1.0, 3.0, 5.0):
            data = ntk.sample_shortcut_data(
                jax.random.fold_in(key, 1),
                3200,
                emb,
                rho_s=rho_s,
                rho_c=0.9,
                alpha_s=alpha,
            )
            lda = ntk.lda_fit(data.x, data.y)
            grid = ntk.probe_grid(rho_s, 0.9)
            dec = ntk.lda_decision(lda, ntk.embed(grid, emb, alpha, 1.0))
            rel.append(float(ntk.reliance(dec, grid)))
        assert abs(rel[0] - r) <= 0.07
        np.testing.assert_allclose(rel, rel[0], atol=1e-6)  # alpha only rescales


def test_linear_model_trained_to_convergence_is_unbiased(key):
    # acceptance: |bias| <= 0.05 for a linear model trained to convergence
    emb = ntk.make_embedding(key, 100)
    net = ntk.MLPConfig(
        in_dim=100, widths=(), out_dim=1, parameterization="standard", b_std=1.0
    )
    # full-batch Adam: minibatch noise would keep the boundary jittering (spec C4)
    tc = ntk.TrainConfig(steps=8000, batch_size=None, eval_every=1000)
    for rho_s, alpha in ((0.8, 5.0), (0.9, 3.0)):
        tr = ntk.sample_shortcut_data(
            jax.random.fold_in(key, 1), 3200, emb, rho_s=rho_s, rho_c=0.9, alpha_s=alpha
        )
        va = ntk.sample_shortcut_data(
            jax.random.fold_in(key, 2), 1000, emb, rho_s=rho_s, rho_c=0.9, alpha_s=alpha
        )
        res = jax.jit(functools.partial(ntk.train_classifier, net=net, train=tc))(
            key, tr.x, tr.y, va.x, va.y, 1e-2
        )
        grid = ntk.probe_grid(rho_s, 0.9)
        xg = ntk.embed(grid, emb, alpha, 1.0)
        dec = jax.vmap(functools.partial(ntk.mlp_apply, cfg=net), in_axes=(None, 0))(
            res.final, xg
        )[:, 0]
        lda = ntk.lda_fit(tr.x, tr.y)
        bias = ntk.shortcut_bias(dec, ntk.lda_decision(lda, xg), grid)
        assert abs(float(bias)) <= 0.05, (rho_s, alpha, float(bias))


def test_training_vmaps_over_seeds(key):
    emb = ntk.make_embedding(key, 10)
    tr = ntk.sample_shortcut_data(key, 200, emb, rho_s=0.7, rho_c=0.9, alpha_s=2.0)
    net = ntk.MLPConfig(in_dim=10, widths=(16,), parameterization="standard")
    tc = ntk.TrainConfig(steps=100, batch_size=32, eval_every=50)
    fn = functools.partial(ntk.train_classifier, net=net, train=tc)
    keys = jax.random.split(key, 3)
    batched = jax.vmap(fn, in_axes=(0, None, None, None, None, None))(
        keys, tr.x, tr.y, tr.x, tr.y, 1e-2
    )
    for i in range(3):
        one = fn(keys[i], tr.x, tr.y, tr.x, tr.y, 1e-2)
        np.testing.assert_allclose(batched.train_loss[i], one.train_loss, rtol=1e-5)
    assert float(batched.val_accuracy[:, -1].min()) > 0.8  # it learns


def test_bad_input(key):
    with pytest.raises(ValueError, match="rho"):
        ntk.latent_means(jnp.array([0.4]))
    with pytest.raises(ValueError, match="rho"):
        ntk.sample_latents(key, 10, rho_s=1.0, rho_c=0.9)
    emb = ntk.make_embedding(key, 5)
    with pytest.raises(ValueError, match="alpha_s"):
        ntk.embed(jnp.ones((3, 2)), emb, 0.0, 1.0)
    with pytest.raises((ValueError, TypeError), match="z"):
        ntk.embed(jnp.ones((3, 3)), emb, 1.0, 1.0)
    with pytest.raises(ValueError, match="n"):
        ntk.sample_latents(key, 11, rho_s=0.7, rho_c=0.9)
    with pytest.raises((ValueError, TypeError), match="decision"):
        ntk.reliance(jnp.ones(5), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="optimizer"):
        ntk.TrainConfig(optimizer="lbfgs")
