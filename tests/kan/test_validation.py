"""Bad inputs raise (naming the argument) instead of giving silent garbage, and the
value-level fixes that came with the checks (weighted means, NumPy inputs, numpy
integers, array ridges) agree with independent NumPy references."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import kan

CFG = kan.KANConfig(widths=(4, 5, 3), grid_size=3, order=2)
REG = dataclasses.replace(CFG, widths=(4, 5, 1))
TC = kan.KANTrainConfig(epochs=1, batch_size=8)


def _setup(n=12, cfg=CFG):
    params = kan.init_kan(jax.random.key(0), cfg)
    params = jax.tree_util.tree_map(lambda a: 3 * a, params)
    grids = kan.kan_grids(cfg)
    x = jax.random.normal(jax.random.key(1), (n, 4))
    y = jnp.arange(n) % 3
    return params, grids, x, y


# -- 2. class labels outside 0..C-1, float labels ---------------------------------


@pytest.mark.parametrize("bad", [3, -1])
def test_labels_outside_classes_raise(bad):
    params, grids, x, y = _setup()
    y = y.at[0].set(bad)
    kw = dict(grids=grids, cfg=CFG)
    with pytest.raises(ValueError, match="^y: "):
        kan.kan_loss(jnp.zeros((12, 3)), y, "classification")
    with pytest.raises(ValueError, match="^y: "):
        kan.kan_ko_losses(params, x, y, task="classification", **kw)
    with pytest.raises(ValueError, match="^y: "):
        kan.kan_ko(params, x, y, task="classification", **kw)
    with pytest.raises(ValueError, match="^y: "):
        kan.train_kan(jax.random.key(0), params, x, y, train_cfg=TC, **kw)
    folds = [(np.arange(6), np.arange(6, 12)), (np.arange(6, 12), np.arange(6))]
    with pytest.raises(ValueError, match="^y: "):
        kan.crossval_feature_scores(
            jax.random.key(0), x, y, folds, cfg=CFG, train_cfg=TC
        )


def test_float_labels_for_classification_raise_naming_y():
    params, grids, x, y = _setup()
    with pytest.raises(TypeError, match="^y: "):
        kan.kan_loss(jnp.zeros((12, 3)), y.astype(float), "classification")
    with pytest.raises(TypeError, match="^y: "):
        kan.train_kan(
            jax.random.key(0),
            params,
            x,
            y.astype(float),
            grids=grids,
            cfg=CFG,
            train_cfg=TC,
        )


def test_kan_ko_raises_on_non_finite_losses():
    params, grids, x, y = _setup()
    # an infinite coefficient makes every concrete loss NaN; kan_ko used to return
    # zeros (NaN fails `tot > 0`)
    lay = params[1]
    params = (
        params[0],
        lay._replace(spline_weight=lay.spline_weight.at[0].set(jnp.inf)),
    )
    base, _ = kan.kan_ko_losses(
        params, x, y, grids=grids, cfg=CFG, task="classification"
    )
    assert not np.isfinite(base)
    with pytest.raises(ValueError, match="not finite"):
        kan.kan_ko(params, x, y, grids=grids, cfg=CFG, task="classification")


# -- 3. crossval_feature_scores runs train_kan's checks up front --


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("regression_two_outputs", "^cfg.widths: "),
        ("nan_y", "^y: "),
        ("empty_validation", "^folds: "),
        ("index_out_of_range", "^folds: "),
        ("wrong_d", "^x: "),
    ],
)
def test_crossval_checks_inputs(case, match):
    x = np.asarray(jax.random.normal(jax.random.key(0), (12, 4)))
    y = 3.0 * x[:, 0]
    folds = [(np.arange(6), np.arange(6, 12)), (np.arange(6, 12), np.arange(6))]
    cfg, tc = REG, dataclasses.replace(TC, task="regression")
    if case == "regression_two_outputs":
        cfg = dataclasses.replace(REG, widths=(4, 5, 2))
    elif case == "nan_y":
        y[0] = np.nan
    elif case == "empty_validation":
        folds = [(np.arange(12), np.arange(0))]
    elif case == "index_out_of_range":
        folds = [(np.arange(6), np.arange(6, 14))]
    else:
        x = x[:, :3]
    with pytest.raises(ValueError, match=match):
        kan.crossval_feature_scores(
            jax.random.key(0), x, y, folds, cfg=cfg, train_cfg=tc
        )


# -- 4. basis="uniform" on a non-uniform grid ---------------------------------------


def test_uniform_basis_on_bent_grid_raises_in_every_scorer():
    cfg = dataclasses.replace(CFG, basis="uniform")
    params, grids, x, y = _setup(cfg=cfg)
    bent = (grids[0].at[:, 4].add(0.3), grids[1])
    kw = dict(grids=bent, cfg=cfg)
    calls = [
        lambda: kan.kan_l1(params, x, **kw),
        lambda: kan.kan_l2(params, x, **kw),
        lambda: kan.kan_si(params, x, **kw),
        lambda: kan.kan_ko(params, x, y, task="classification", **kw),
        lambda: kan.kan_attr(params, x, **kw),
        lambda: kan.first_layer_edges(params, x, **kw),
        lambda: kan.kan_regularization(params, x, **kw),
        lambda: kan.layer_edges(params[0], bent[0], x[0], 2, "uniform"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="^grids?(\\[0\\])?: "):
            call()


# -- 5. kan_loss shapes and the weighted mean --


def test_kan_loss_shapes_raise():
    y = jnp.arange(4.0)
    with pytest.raises(ValueError, match="^y: "):
        kan.kan_loss(y[:, None], y[:, None], "regression")  # used to give 2.5, not 0
    with pytest.raises(ValueError, match="^outputs: "):
        kan.kan_loss(jnp.zeros((4, 3)), y, "regression")
    with pytest.raises(ValueError, match="^weights: "):
        kan.kan_loss(jnp.zeros((4, 1)), y, "regression", jnp.ones(3))


def test_kan_loss_weighted_mean_equals_numpy(x64):
    out = jax.random.normal(jax.random.key(0), (5, 3))
    y = jnp.array([0, 2, 1, 1, 0])
    w = jnp.array([0.1, 0.05, 0.2, 0.0, 0.15])  # sums to 0.5 < 1
    o = np.asarray(out)
    ce = -(o[np.arange(5), np.asarray(y)] - np.log(np.exp(o).sum(axis=1)))
    got = kan.kan_loss(out, y, "classification", w)
    np.testing.assert_allclose(got, np.average(ce, weights=np.asarray(w)), rtol=1e-12)
    reg = kan.kan_loss(out[:, :1], jnp.arange(5.0), "regression", w)
    se = (o[:, 0] - np.arange(5.0)) ** 2
    np.testing.assert_allclose(reg, np.average(se, weights=np.asarray(w)), rtol=1e-12)
    # all weights 0: loss 0 with a finite gradient
    zero = jnp.zeros(5)
    assert float(kan.kan_loss(out, y, "classification", zero)) == 0.0
    g = jax.grad(lambda o: kan.kan_loss(o, y, "classification", zero))(out)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("bad", [-1.0, np.nan])
def test_bad_weights_raise(bad):
    params, grids, x, y = _setup()
    w = jnp.ones(12).at[3].set(bad)
    with pytest.raises(ValueError, match="^weights: "):
        kan.train_kan(
            jax.random.key(0),
            params,
            x,
            y,
            grids=grids,
            cfg=CFG,
            train_cfg=TC,
            weights=w,
        )
    with pytest.raises(ValueError, match="^weights: "):
        kan.kan_loss(jnp.zeros((12, 3)), y, "classification", w)


# -- 6. NaN / inf features --


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_x_raises(bad):
    params, grids, x, _ = _setup()
    xb = x.at[0, 1].set(bad)
    kw = dict(grids=grids, cfg=CFG)
    coef = jnp.ones((2, 4, CFG.n_basis))
    calls = [
        lambda: kan.bspline_basis(xb, grids[0], 2),
        lambda: kan.bspline_basis(xb, grids[0], 2, method="uniform"),
        lambda: kan.spline_values(xb, grids[0], coef, 2),
        lambda: kan.layer_edges(params[0], grids[0], xb[0], 2),
        lambda: kan.kan_apply(params, xb[0], **kw),
        lambda: kan.kan_layer_inputs(params, xb[0], **kw),
        lambda: kan.kan_regularization(params, xb, **kw),
        lambda: kan.update_kan_grids(params, xb, **kw),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="^x: expected finite"):
            call()


# -- 7. ridge; 15. array ridge --


def test_ridge_checks_and_array_ridge(x64):
    params, grids, x, _ = _setup()
    with pytest.raises(ValueError, match="^ridge: "):
        kan.update_kan_grids(params, x, grids=grids, cfg=CFG, ridge=-1.0)
    g = kan.uniform_grid(1, 3, 2)
    xs = jnp.linspace(-1, 1, 9)[:, None]
    ys = jnp.sin(3 * xs)[:, :, None]
    got = kan.fit_coefficients(xs, ys, g, 2, ridge=jnp.asarray(0.1))
    # Tikhonov normal equations (B^T B + 0.1 I) c = B^T y
    b = np.asarray(kan.bspline_basis(xs, g, 2))[:, 0]
    want = np.linalg.solve(
        b.T @ b + 0.1 * np.eye(b.shape[1]), b.T @ np.asarray(ys[:, 0])
    )
    # SVD vs normal equations: round-off of a condition-number-~10 system
    np.testing.assert_allclose(got[:, 0].T, want, rtol=1e-10, atol=1e-13)
    with pytest.raises(TypeError, match="^ridge: "):
        jax.jit(lambda r: kan.fit_coefficients(xs, ys, g, 2, ridge=r))(0.1)


# -- 8. spline_scaler shape --


@pytest.mark.parametrize("shape", [(1,), (5, 1), (4, 5)])
def test_spline_scaler_shape_is_checked(shape):
    params, grids, x, _ = _setup()
    bad = (params[0]._replace(spline_scaler=jnp.ones(shape)), params[1])
    with pytest.raises(ValueError, match="spline_scaler"):
        kan.kan_apply(bad, x[0], grids=grids, cfg=CFG)
    with pytest.raises(ValueError, match="spline_scaler"):
        kan.kan_l1(bad, x, grids=grids, cfg=CFG)


# -- 9. kfold_indices; 15. numpy integers --


def test_kfold_indices_nan_labels_raise_and_numpy_ints():
    y = np.r_[np.nan, np.nan, np.zeros(8), np.ones(10)]
    with pytest.raises(ValueError, match="^y: "):
        kan.kfold_indices(jax.random.key(0), y, 5)
    y = np.arange(20) % 2
    a = kan.kfold_indices(jax.random.key(0), y, np.int64(5))
    b = kan.kfold_indices(jax.random.key(0), y, 5)
    for (ta, va), (tb, vb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(va, vb)
    assert sorted(np.concatenate([v for _, v in a]).tolist()) == list(range(20))


def test_config_numpy_ints_bools_and_infinite_range():
    cfg = kan.KANConfig(widths=(4, 3), grid_size=np.int64(3), order=np.int64(2))
    assert cfg == kan.KANConfig(widths=(4, 3), grid_size=3, order=2)
    assert type(cfg.grid_size) is int and hash(cfg) == hash(
        kan.KANConfig(widths=(4, 3), grid_size=3, order=2)
    )
    with pytest.raises(ValueError, match="^order: "):
        kan.KANConfig(widths=(4, 3), order=True)
    with pytest.raises(ValueError, match="^grid_range: "):
        kan.KANConfig(widths=(4, 3), grid_range=(-np.inf, 1.0))


# -- 10. permutation_importance on NumPy x --


def test_permutation_importance_accepts_numpy_x():
    w = jnp.array([2.0, 0.0, -1.0])
    predict = lambda xi: jnp.stack([xi @ w, -(xi @ w)])
    x = jax.random.normal(jax.random.key(0), (40, 3))
    y = jnp.where(x @ w > 0, 0, 1)
    kw = dict(task="classification", n_repeats=2)
    ref = kan.permutation_importance(jax.random.key(1), predict, x, y, **kw)
    got = kan.permutation_importance(jax.random.key(1), predict, np.asarray(x), y, **kw)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


# -- 11. degenerate sample and fold counts --


def test_too_few_samples_or_folds_raise():
    params, grids, x, _ = _setup()
    kw = dict(grids=grids, cfg=CFG)
    with pytest.raises(ValueError, match="^x: expected at least 2"):
        kan.kan_attr(params, x[:1], **kw)
    with pytest.raises(ValueError, match="^x: expected at least 2"):
        kan.kan_l1(params, x[:1], center=True, **kw)
    with pytest.raises(ValueError, match="^x: expected at least 2"):
        kan.kan_l2(params, x[:1], center=True, **kw)
    with pytest.raises(ValueError, match="^x: expected at least 1"):
        kan.kan_l1(params, x[:0], **kw)
    with pytest.raises(ValueError, match="^x: expected at least 1"):
        kan.kan_si(params, x[:0], **kw)
    with pytest.raises(ValueError, match="^per_fold_scores: "):
        kan.jaccard_stability(jnp.arange(3.0)[None], 2)


def test_options_of_the_other_variant_raise():
    # `center` would be silently ignored by the coefficient variant, `include_base`
    # by the paper's: both are errors, not no-ops.
    params, grids, x, _ = _setup()
    kw = dict(grids=grids, cfg=CFG)
    with pytest.raises(ValueError, match="^center: "):
        kan.kan_l1(params, x, variant="coef", center=True, **kw)
    with pytest.raises(ValueError, match="^include_base: "):
        kan.kan_l2(params, x, include_base=True, **kw)


# -- 12. redundancy --


def test_redundancy_checks_inputs():
    x = np.stack([np.arange(5.0), np.arange(5.0) ** 2, -np.arange(5.0)], axis=1)
    with pytest.raises(ValueError, match="^x: "):
        kan.redundancy(np.where(np.arange(15).reshape(5, 3) == 2, np.nan, x))
    for bad in ([0, -1], [0, 3], [0, 0]):
        with pytest.raises(ValueError, match="^selected: "):
            kan.redundancy(x, bad)
    # columns 0 and 2 are perfectly anti-correlated
    assert kan.redundancy(x, [0, 2]) == pytest.approx(1.0)


# -- 13. sklearn_scores --


def test_sklearn_scores_checks_validation_inputs():
    pytest.importorskip("sklearn")
    x = np.asarray(jax.random.normal(jax.random.key(0), (30, 4)))
    y = (x[:, 0] > 0).astype(int)
    xv = x.copy()
    xv[:, 1] = np.nan
    args = dict(task="classification")
    with pytest.raises(ValueError, match="^x_val: "):
        kan.sklearn_scores("rf_perm", x, y, xv, y, **args)
    with pytest.raises(ValueError, match="^x_val: "):
        kan.sklearn_scores("rf_perm", x, y, x[:, :3], y, **args)
    with pytest.raises(ValueError, match="^y_train: "):
        kan.sklearn_scores("mi", x, y[:10], x, y, **args)


# -- 15. kan_regularization weights --


@pytest.mark.parametrize("name", ["l1", "entropy"])
def test_kan_regularization_rejects_negative_weights(name):
    params, grids, x, _ = _setup()
    with pytest.raises(ValueError, match=f"^{name}: "):
        kan.kan_regularization(params, x, grids=grids, cfg=CFG, **{name: -1.0})


def test_degenerate_grids_and_empty_samples_raise():
    # All knots equal: every basis function is identically 0 (no span to live on).
    with pytest.raises(ValueError, match="^grid: row 1 has all knots equal"):
        grid = jnp.stack([jnp.arange(8.0), jnp.zeros(8)])
        kan.bspline_basis(jnp.array([[0.5, 0.0]]), grid, 2)
    const = jnp.ones((6, 2)).at[:, 0].set(jnp.arange(6.0))
    with pytest.raises(ValueError, match="^grid: row 1"):
        kan.bspline_basis(const, kan.grid_from_samples(const, 3, 2, margin=0.0), 2)
    # The default margin gives a constant feature a span; its basis sums to 1.
    b = kan.bspline_basis(const, kan.grid_from_samples(const, 3, 2), 2)
    np.testing.assert_allclose(b.sum(-1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="^x: expected at least one sample"):
        kan.grid_from_samples(jnp.zeros((0, 3)), 5, 3)


def test_empty_integer_and_container_inputs(no_runtime_types):
    """Found by review: empty x gave NaN or all-zero scores (baselines), a bare
    ZeroDivisionError (train_kan) or 0.0 (kan_regularization); integer x (raw
    sklearn digits are int64) failed inside SiLU; weights as a list, a 3-tuple
    grid_range, a string scale_noise and sklearn's split() generator as folds
    failed with errors naming nothing."""
    params, grids, x, y = _setup()
    predict = lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=CFG)
    with pytest.raises(ValueError, match="^x: expected at least 1 sample"):
        kan.gradient_saliency(predict, x[:0])
    with pytest.raises(ValueError, match="^x: expected at least 1 sample"):
        kan.permutation_importance(
            jax.random.key(0), predict, x[:0], y[:0], task="classification"
        )
    with pytest.raises(ValueError, match="^x: expected at least 1 sample"):
        kan.train_kan(
            jax.random.key(0), params, x[:0], y[:0], grids=grids, cfg=CFG, train_cfg=TC
        )
    with pytest.raises(ValueError, match="^x: expected at least 1 sample"):
        kan.kan_regularization(params, x[:0], grids=grids, cfg=CFG)

    xi = jnp.round(3 * x).astype(jnp.int32)
    xf = xi.astype(jnp.float32)
    np.testing.assert_array_equal(
        kan.kan_apply(params, xi[0], grids=grids, cfg=CFG),
        kan.kan_apply(params, xf[0], grids=grids, cfg=CFG),
    )
    for score in (kan.kan_l1, kan.kan_si, kan.kan_attr):
        np.testing.assert_allclose(
            score(params, xi, grids=grids, cfg=CFG),
            score(params, xf, grids=grids, cfg=CFG),
            rtol=1e-6,
        )
    np.testing.assert_allclose(
        kan.gradient_saliency(predict, xi), kan.gradient_saliency(predict, xf)
    )
    w = [1.0] * 12
    trained = kan.train_kan(
        jax.random.key(0), params, xi, y, grids=grids, cfg=CFG, train_cfg=TC, weights=w
    )
    want = kan.train_kan(
        jax.random.key(0), params, xf, y, grids=grids, cfg=CFG, train_cfg=TC
    )
    np.testing.assert_allclose(trained[1], want[1], rtol=1e-6)

    with pytest.raises(ValueError, match="^grid_range: expected a pair"):
        kan.KANConfig(widths=(4, 3), grid_range=(0, 1, 2))
    with pytest.raises(TypeError, match="^scale_noise: expected a number"):
        kan.KANConfig(widths=(4, 3), scale_noise="a")

    from sklearn.model_selection import KFold

    x2 = np.asarray(jax.random.normal(jax.random.key(2), (30, 4)))
    y2 = np.arange(30) % 3
    folds = KFold(3, shuffle=True, random_state=0).split(x2)
    assert not isinstance(folds, list)  # a generator
    got = kan.crossval_feature_scores(
        jax.random.key(0),
        x2,
        y2,
        folds,
        cfg=CFG,
        train_cfg=TC,
        methods=("kan_l1",),
        progress=False,
    )
    want = kan.crossval_feature_scores(
        jax.random.key(0),
        x2,
        y2,
        list(KFold(3, shuffle=True, random_state=0).split(x2)),
        cfg=CFG,
        train_cfg=TC,
        methods=("kan_l1",),
        progress=False,
    )
    np.testing.assert_allclose(got.per_fold["kan_l1"], want.per_fold["kan_l1"])


def test_classification_with_one_output_raises():
    """Softmax cross-entropy over a single logit is identically 0: training moved
    nothing (losses [0, 0, 0]) and KO scored every feature 0, with no error."""
    one = dataclasses.replace(CFG, widths=(4, 5, 1))
    params, grids, x, _ = _setup(cfg=one)
    y = jnp.zeros(12, jnp.int32)
    with pytest.raises(ValueError, match="^cfg.widths: classification needs"):
        kan.train_kan(
            jax.random.key(0), params, x, y, grids=grids, cfg=one, train_cfg=TC
        )
    with pytest.raises(ValueError, match="^cfg.widths: classification needs"):
        kan.kan_ko_losses(params, x, y, grids=grids, cfg=one, task="classification")
    with pytest.raises(ValueError, match="^outputs: classification needs"):
        kan.kan_loss(jnp.zeros((12, 1)), y, "classification")
    # regression with one output is fine, and two classes train (loss is not 0)
    assert float(kan.kan_loss(jnp.zeros((12, 1)), y.astype(float), "regression")) == 0
    assert float(kan.kan_loss(jnp.zeros((12, 2)), y, "classification")) > 0.69
