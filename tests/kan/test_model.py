"""KAN layers and networks: matmul form vs edge sum, grid updates, NNX, training."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxfeat import kan

CFG = kan.KANConfig(widths=(3, 4, 2), grid_size=4, order=3)


def _net(cfg=CFG, seed=0):
    return kan.init_kan(jax.random.key(seed), cfg), kan.kan_grids(cfg)


def _apply(params, grids, x, cfg=CFG):
    return jax.vmap(lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=cfg))(x)


def test_forward_equals_sum_of_edges_and_hand_formula(x64):
    params, grids = _net()
    x = jax.random.uniform(jax.random.key(1), (7, 3), minval=-1.5, maxval=1.5)
    h = jax.vmap(lambda xi: kan.kan_layer_inputs(params, xi, grids=grids, cfg=CFG))(x)[
        1
    ]
    edges = jax.vmap(lambda xi: kan.layer_edges(params[0], grids[0], xi, 3))(x)
    np.testing.assert_allclose(edges.sum(1), h, atol=1e-13)
    # hand formula for edge (q, p) = (1, 2) with an independent NumPy basis sum
    lay = params[0]
    basis = np.asarray(kan.bspline_basis(x, grids[0], 3))
    want = np.asarray(lay.base_weight[1, 2]) * np.asarray(jax.nn.silu(x[:, 2])) + (
        np.asarray(lay.spline_scaler[1, 2])
        * basis[:, 2]
        @ np.asarray(lay.spline_weight[1, 2])
    )
    np.testing.assert_allclose(edges[:, 2, 1], want, atol=1e-13)


def test_init_statistics_and_spline_scaler():
    params, _ = _net(kan.KANConfig(widths=(64, 129, 3)))
    w = params[0].base_weight
    assert float(jnp.abs(w).max()) <= 1 / 8 + 1e-7  # U(-1/sqrt(64), 1/sqrt(64))
    assert abs(float(jnp.std(w)) - 1 / 8 / np.sqrt(3)) < 2e-3
    np.testing.assert_array_equal(params[0].spline_scaler, 1.0)  # "paper" init
    ek, _ = _net(kan.KANConfig(widths=(64, 129, 3), init="efficient_kan"))
    assert float(jnp.std(ek[0].spline_scaler)) > 0.05
    # the noise curves stay within scale_noise / (2 G) at the interior knots
    assert float(jnp.abs(params[0].spline_weight).max()) < 0.5


def test_grid_update_keeps_the_function(x64):
    cfg = kan.KANConfig(widths=(2, 3, 1), grid_size=5, order=3, grid_range=(-2.0, 2.0))
    params, grids = _net(cfg, seed=3)
    params = jax.tree_util.tree_map(lambda a: 5 * a, params)  # non-trivial curves
    x = jax.random.uniform(jax.random.key(4), (400, 2), minval=-1.0, maxval=1.0)
    before = _apply(params, grids, x, cfg)
    # refinement: G = 5 -> 20 on data; the old spline is not exactly representable
    # on the quantile grid, but the refit keeps the function to the grid resolution
    p2, g2, cfg2 = kan.update_kan_grids(params, x, grids=grids, cfg=cfg, grid_size=20)
    after = _apply(p2, g2, x, cfg2)
    assert cfg2.grid_size == 20 and g2[0].shape == (2, 27)
    rel = float(jnp.linalg.norm(after - before) / jnp.linalg.norm(before))
    assert rel < 1e-2, rel
    # a uniform refinement that contains the old knots reproduces the spline exactly
    p3, g3, cfg3 = kan.update_kan_grids(
        params, x, grids=grids, cfg=cfg, grid_eps=1.0, margin=0.0
    )
    assert cfg3 == cfg
    assert bool(jnp.all(jnp.isfinite(_apply(p3, g3, x, cfg3))))


def test_grid_update_keeps_the_parameter_dtype(x64):
    """float32 parameters and float64 NumPy samples under x64: the refit
    coefficients and grids came back float64 beside float32 base weights."""
    params, grids = _net()
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    grids = tuple(g.astype(jnp.float32) for g in grids)
    x = np.asarray(jax.random.uniform(jax.random.key(2), (50, CFG.widths[0])), float)
    p2, g2, _ = kan.update_kan_grids(params, x, grids=grids, cfg=CFG)
    assert {a.dtype for a in jax.tree_util.tree_leaves((p2, g2))} == {
        jnp.dtype(jnp.float32)
    }
    # the same update from float32 samples: equal to float32 round-off
    p3, g3, _ = kan.update_kan_grids(params, x.astype(np.float32), grids=grids, cfg=CFG)
    for a, b in zip(
        jax.tree_util.tree_leaves((p2, g2)),
        jax.tree_util.tree_leaves((p3, g3)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_nnx_module_matches_pure_apply():
    model = kan.kan_module(CFG, rngs=nnx.Rngs(params=0))
    params, grids = kan.to_pure(model)
    x = jax.random.normal(jax.random.key(2), (5, 3))
    np.testing.assert_allclose(model(x), _apply(params, grids, x), atol=1e-6)
    graph, trainable, rest = nnx.split(model, nnx.Param, ...)
    leaves = jax.tree_util.tree_leaves(trainable)
    assert len(leaves) == 6  # 3 arrays x 2 layers; grids are not parameters
    assert len(jax.tree_util.tree_leaves(rest)) == 2


def test_training_fits_and_weights_drop_rows():
    x = jax.random.normal(jax.random.key(0), (60, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.3).astype(jnp.int32)
    params, grids = _net()
    tc = kan.KANTrainConfig(epochs=60, batch_size=16, learning_rate=1e-2)
    trained, losses = kan.train_kan(
        jax.random.key(1), params, x, y, grids=grids, cfg=CFG, train_cfg=tc
    )
    assert float(losses[-1]) < 0.5 * float(losses[0])
    acc = jnp.mean(jnp.argmax(_apply(trained, grids, x), -1) == y)
    assert float(acc) > 0.9
    # zero-weight rows do not influence training: poison them and compare
    w = jnp.ones(60).at[50:].set(0.0)
    _assert_weighted_training_equal(tc, w, (x, y), (x, y.at[50:].set(1 - y[50:])))


def test_minibatch_of_zero_weight_is_skipped():
    """Batch size 1 on rows of weight (1, 0) for 2 epochs: every order has a
    zero-weight step after a real one, where Adam's momentum moved the
    parameters. Skipped, training equals 2 steps on the first row alone."""
    x = jax.random.normal(jax.random.key(0), (2, 3))
    y = jnp.array([1, 0], jnp.int32)
    params, grids = _net()
    tc = kan.KANTrainConfig(epochs=2, batch_size=1, learning_rate=1e-1)
    run = lambda xx, yy, **kw: kan.train_kan(
        jax.random.key(1), params, xx, yy, grids=grids, cfg=CFG, train_cfg=tc, **kw
    )
    got, got_loss = run(x, y, weights=jnp.array([1.0, 0.0]))
    want, want_loss = run(x[:1], y[:1])
    _assert_trees_close(got, want)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-6)


def _assert_weighted_training_equal(tc, w, data, other):
    """Training with weights `w` on `data` and on `other` gives the same parameters."""
    params, grids = _net()
    t1, t2 = (
        kan.train_kan(
            jax.random.key(1),
            params,
            *xy,
            grids=grids,
            cfg=CFG,
            train_cfg=tc,
            weights=w,
        )[0]
        for xy in (data, other)
    )
    _assert_trees_close(t1, t2)


def _assert_trees_close(t1, t2):
    for a, b in zip(
        jax.tree_util.tree_leaves(t1), jax.tree_util.tree_leaves(t2), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)  # float32 Adam on equal inputs


def test_regularised_training_ignores_zero_weight_rows():
    # The regulariser's edge magnitudes are weighted means too: rows of weight 0
    # (fold padding in crossval_scores) with wild inputs must not move training.
    x = jax.random.normal(jax.random.key(0), (40, 3))
    y = (x[:, 0] > 0).astype(jnp.int32)
    tc = kan.KANTrainConfig(epochs=5, batch_size=16, learning_rate=1e-2, reg_lambda=1.0)
    w = jnp.ones(40).at[30:].set(0.0)
    _assert_weighted_training_equal(tc, w, (x, y), (x.at[30:].set(3.0 * x[30:] + 1), y))


def test_weighted_regularizer_equals_it_on_the_kept_rows(x64):
    params, grids = _net()
    x = jax.random.normal(jax.random.key(5), (9, 3))
    w = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    kw = dict(grids=grids, cfg=CFG, l1=1.0, entropy=2.0)
    got = kan.kan_regularization(params, x, weights=w, **kw)
    want = kan.kan_regularization(params, x[w > 0], **kw)
    np.testing.assert_allclose(got, want, rtol=1e-12)  # float64: rounding only
    # integer weights 2 count a row twice
    w2 = jnp.array([2, 1, 1, 1, 1, 1, 1, 1, 1])
    twice = kan.kan_regularization(params, jnp.concatenate([x[:1], x]), **kw)
    np.testing.assert_allclose(
        kan.kan_regularization(params, x, weights=w2, **kw), twice, rtol=1e-12
    )


def test_regularizer_matches_definition(x64):
    params, grids = _net()
    x = jax.random.normal(jax.random.key(5), (9, 3))
    got = kan.kan_regularization(params, x, grids=grids, cfg=CFG, l1=1.0, entropy=2.0)
    want = 0.0
    inputs = [
        np.asarray(x),
        np.asarray(
            _apply(params[:1], grids[:1], x, dataclasses.replace(CFG, widths=(3, 4)))
        ),
    ]
    for lay, g, h in zip(params, grids, inputs, strict=True):
        e = np.asarray(
            jax.vmap(lambda hi, lay=lay, g=g: kan.layer_edges(lay, g, hi, 3))(
                jnp.asarray(h)
            )
        )
        a = np.abs(e).mean(0)
        p = a / a.sum()
        want += a.sum() + 2.0 * -(p * np.log(p)).sum()
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kan.KANConfig(widths=(3,)), "widths"),
        (lambda: kan.KANConfig(widths=(3, 2), order=-1), "order"),
        (lambda: kan.KANConfig(widths=(3, 2), init="xavier"), "init"),
        (lambda: kan.KANTrainConfig(task="ranking"), "task"),
        (lambda: kan.KANTrainConfig(learning_rate=-1.0), "learning_rate"),
        (lambda: kan.kan_apply(_net()[0], jnp.zeros(4), grids=_net()[1], cfg=CFG), "x"),
        (
            lambda: kan.kan_apply(
                _net()[0], jnp.zeros(3), grids=_net()[1][:1], cfg=CFG
            ),
            "grids",
        ),
        (
            lambda: kan.kan_apply(
                _net()[0],
                jnp.zeros(3),
                grids=kan.kan_grids(dataclasses.replace(CFG, grid_size=5)),
                cfg=CFG,
            ),
            "grids",
        ),
        (
            lambda: kan.train_kan(
                jax.random.key(0),
                _net()[0],
                jnp.full((4, 3), jnp.nan),
                jnp.zeros(4, int),
                grids=_net()[1],
                cfg=CFG,
                train_cfg=kan.KANTrainConfig(),
            ),
            "x",
        ),
        (
            lambda: kan.train_kan(
                jax.random.key(0),
                _net()[0],
                jnp.zeros((4, 3)),
                jnp.zeros(4),
                grids=_net()[1],
                cfg=CFG,
                train_cfg=kan.KANTrainConfig(task="regression"),
            ),
            "widths",
        ),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("reg", [0.0, 1e-2])
def test_hoisted_first_layer_equals_per_step_features(monkeypatch, reg):
    # train_kan computes the first layer's basis once for the whole data set when the
    # table is small; above the limit it recomputes it every step. Same arithmetic on
    # the same rows, so the runs must agree to float32 round-off.
    import jaxfeat.kan._train as train_mod

    x = jax.random.normal(jax.random.key(0), (50, 3))
    y = x[:, 0] - x[:, 1] * x[:, 2]
    cfg = dataclasses.replace(CFG, widths=(3, 4, 1))
    params, grids = _net(cfg)
    tc = kan.KANTrainConfig(
        task="regression", epochs=15, batch_size=16, learning_rate=1e-2, reg_lambda=reg
    )
    runs = []
    for limit in (1 << 25, 0):
        monkeypatch.setattr(train_mod, "_HOIST_ELEMENTS", limit)
        train_mod._train.clear_cache()
        runs.append(
            kan.train_kan(
                jax.random.key(1), params, x, y, grids=grids, cfg=cfg, train_cfg=tc
            )
        )
    train_mod._train.clear_cache()
    (p1, l1), (p2, l2) = runs
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(
        jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert float(l1[-1]) < 0.7 * float(l1[0])


def test_order0_grid_from_samples_covers_the_largest_sample(x64):
    """With order 0 there are no extension knots, and with grid_eps = 0 the last
    knot was the largest sample, where the half-open indicators are all 0: the
    updated layer output 0 there instead of keeping its spline (all ones here)."""
    x = jnp.linspace(-0.9, 0.9, 11)[:, None]
    grid = kan.grid_from_samples(x, 4, 0, grid_eps=0.0, margin=0.0)
    basis = kan.bspline_basis(x, grid, 0)
    np.testing.assert_allclose(basis.sum(axis=-1), 1.0)  # partition of unity
    assert float(grid[0, -1]) > 0.9 and float(grid[0, -1]) < 0.9 + 1e-12
    cfg = kan.KANConfig(widths=(1, 1), grid_size=4, order=0)
    params, grids = _net(cfg, seed=0)
    layer = params[0]._replace(
        base_weight=jnp.zeros_like(params[0].base_weight),
        spline_weight=jnp.ones_like(params[0].spline_weight),
        spline_scaler=jnp.ones_like(params[0].spline_scaler),
    )
    p2, g2, cfg2 = kan.update_kan_grids(
        (layer,), x, grids=grids, cfg=cfg, grid_eps=0.0, margin=0.0
    )
    np.testing.assert_allclose(_apply(p2, g2, x, cfg2), 1.0, atol=1e-12)
