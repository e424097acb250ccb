"""Selectors against their definitions: parameter knock-out, finite differences,
per-sample gradients, normalisation, permutation equivariance, constant features."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxfeat import kan

CFG = kan.KANConfig(widths=(4, 5, 3), grid_size=3, order=2)


def _setup(seed=0, n=24):
    params = kan.init_kan(jax.random.key(seed), CFG)
    params = jax.tree_util.tree_map(lambda a: 3 * a, params)  # non-trivial network
    grids = kan.kan_grids(CFG)
    x = jax.random.normal(jax.random.key(seed + 1), (n, 4))
    y = jnp.arange(n) % 3
    return params, grids, x, y


def _loss(params, grids, x, y):
    out = jax.vmap(lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=CFG))(x)
    return kan.kan_loss(out, y, "classification")


def _zero_feature(params, p):
    lay = params[0]
    lay = kan.KANLayer(
        lay.base_weight.at[:, p].set(0.0),
        lay.spline_weight.at[:, p, :].set(0.0),
        lay.spline_scaler.at[:, p].set(0.0),
    )
    return (lay, *params[1:])


def test_knockout_equals_zeroed_parameters(x64):
    params, grids, x, y = _setup()
    base, knocked = kan.kan_ko_losses(
        params, x, y, grids=grids, cfg=CFG, task="classification"
    )
    np.testing.assert_allclose(base, _loss(params, grids, x, y), rtol=1e-12)
    for p in range(4):
        zp = _zero_feature(params, p)
        edges = kan.first_layer_edges(zp, x, grids=grids, cfg=CFG)
        assert float(jnp.abs(edges[:, p, :]).max()) == 0.0  # exactly zero edges
        np.testing.assert_allclose(knocked[p], _loss(zp, grids, x, y), rtol=1e-12)
    s = kan.kan_ko(params, x, y, grids=grids, cfg=CFG, task="classification")
    delta = np.maximum(np.asarray(knocked - base), 0)
    np.testing.assert_allclose(s, delta / delta.sum(), rtol=1e-12)


def test_list_labels_equal_array_labels(no_runtime_types):
    """A Python list of labels, accepted at run time like a list `x` (JAX's
    `ArrayLike` annotation excludes lists, hence the fixture), gives the array's
    values; it raised `TypeError: Cannot determine dtype` in the label check."""
    params, grids, x, y = _setup()
    out = jax.vmap(lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=CFG))(x)
    labels = [int(v) for v in y]
    np.testing.assert_array_equal(
        kan.kan_loss(out, labels, "classification"),
        kan.kan_loss(out, y, "classification"),
    )
    ko = lambda lab: kan.kan_ko(
        params, x, lab, grids=grids, cfg=CFG, task="classification"
    )
    np.testing.assert_array_equal(ko(labels), ko(y))
    tcfg = kan.KANTrainConfig(epochs=2, batch_size=8)
    train = lambda lab: kan.train_kan(
        jax.random.key(0), params, x, lab, grids=grids, cfg=CFG, train_cfg=tcfg
    )
    np.testing.assert_array_equal(
        ravel_pytree(train(labels)[0])[0],
        ravel_pytree(train(y)[0])[0],
    )
    with pytest.raises(TypeError, match="^y: expected integer class labels"):
        kan.kan_loss(out, [0.5] * len(labels), "classification")


def test_knockout_all_zero_when_no_loss_increases():
    params, grids, x, y = _setup()
    params = (
        params[0]._replace(
            base_weight=0 * params[0].base_weight,
            spline_scaler=0 * params[0].spline_scaler,
        ),
        params[1],
    )
    s = kan.kan_ko(params, x, y, grids=grids, cfg=CFG, task="classification")
    np.testing.assert_array_equal(s, 0.0)


def test_saliency_equals_finite_differences_and_per_sample_gradients(x64):
    params, grids, x, _ = _setup()
    f = lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=CFG)
    h = 1e-6
    obj = jax.jit(jax.vmap(lambda xi: jnp.sum(jnp.abs(f(xi)))))  # per-sample objective
    g = np.zeros((x.shape[0], 4))
    for p in range(4):
        e = jnp.zeros((1, 4)).at[0, p].set(h)
        g[:, p] = (obj(x + e) - obj(x - e)) / (2 * h)
    s = np.abs(g).mean(0)
    got = kan.kan_si(params, x, grids=grids, cfg=CFG)
    # central differences: truncation O(h^2), round-off O(eps / h) ~ 1e-10 relative
    np.testing.assert_allclose(got, s / s.sum(), rtol=1e-6)
    jac = jax.vmap(jax.jacrev(f))(x)
    pc = np.abs(np.asarray(jac)).mean((0, 1))
    np.testing.assert_allclose(
        kan.kan_si(params, x, grids=grids, cfg=CFG, objective="per_class"),
        pc / pc.sum(),
        rtol=1e-12,
    )


def test_magnitude_scores_definitions(x64):
    params, grids, x, _ = _setup()
    z = np.asarray(kan.first_layer_edges(params, x, grids=grids, cfg=CFG))
    l1 = np.abs(z).mean((0, 2))
    l2 = np.sqrt((z**2).mean((0, 2)))
    np.testing.assert_allclose(
        kan.kan_l1(params, x, grids=grids, cfg=CFG), l1 / l1.sum(), rtol=1e-12
    )
    np.testing.assert_allclose(
        kan.kan_l2(params, x, grids=grids, cfg=CFG), l2 / l2.sum(), rtol=1e-12
    )
    c = np.abs(np.asarray(params[0].spline_weight * params[0].spline_scaler[..., None]))
    cl1 = c.sum((0, 2)) + np.abs(np.asarray(params[0].base_weight)).sum(0)
    got = kan.kan_l1(params, x, grids=grids, cfg=CFG, variant="coef", include_base=True)
    np.testing.assert_allclose(got, cl1 / cl1.sum(), rtol=1e-12)
    cl2 = np.sqrt((c**2).sum((0, 2)))
    np.testing.assert_allclose(
        kan.kan_l2(params, x, grids=grids, cfg=CFG, variant="coef"),
        cl2 / cl2.sum(),
        rtol=1e-12,
    )


def test_constant_feature_zero_only_when_centred(x64):
    params, grids, x, y = _setup()
    x = x.at[:, 1].set(0.0)
    for fn in (kan.kan_l1, kan.kan_l2):
        assert float(fn(params, x, grids=grids, cfg=CFG)[1]) > 1e-3  # the paper's score
        assert float(fn(params, x, grids=grids, cfg=CFG, center=True)[1]) == 0.0
    # pykan attribution uses standard deviations: a constant input scores ~0
    assert float(kan.kan_attr(params, x, grids=grids, cfg=CFG)[1]) < 1e-12


def test_scores_permute_with_features_and_sum_to_one():
    params, grids, x, y = _setup()
    perm = jnp.array([2, 0, 3, 1])
    lay = params[0]
    pp = (
        kan.KANLayer(
            lay.base_weight[:, perm],
            lay.spline_weight[:, perm],
            lay.spline_scaler[:, perm],
        ),
        params[1],
    )
    calls = {
        "l1": lambda p, v: kan.kan_l1(p, v, grids=grids, cfg=CFG),
        "l2": lambda p, v: kan.kan_l2(p, v, grids=grids, cfg=CFG),
        "si": lambda p, v: kan.kan_si(p, v, grids=grids, cfg=CFG),
        "ko": lambda p, v: kan.kan_ko(
            p, v, y, grids=grids, cfg=CFG, task="classification"
        ),
        "attr": lambda p, v: kan.kan_attr(p, v, grids=grids, cfg=CFG),
    }
    for name, fn in calls.items():
        s = fn(params, x)
        assert float(s.min()) >= 0 and abs(float(s.sum()) - 1) < 1e-5, name
        np.testing.assert_allclose(
            fn(pp, x[:, perm]), s[perm], rtol=2e-5, atol=1e-7, err_msg=name
        )


def test_top_k_is_stable_and_validated():
    s = jnp.array([0.1, 0.3, 0.3, 0.0, 0.3])
    np.testing.assert_array_equal(kan.top_k(s, 3), [1, 2, 4])
    for k in (0, 6):
        with pytest.raises(ValueError, match="k"):
            kan.top_k(s, k)
    with pytest.raises(ValueError, match="scores"):
        kan.top_k(s.at[0].set(jnp.nan), 2)
    # integer and boolean scores rank by value (-s wrapped around for uint8)
    u = jnp.array([0, 5, 3], jnp.uint8)
    np.testing.assert_array_equal(kan.top_k(u, 3), [1, 2, 0])
    np.testing.assert_array_equal(kan.top_k(jnp.array([False, True, True]), 2), [1, 2])


def test_kfold_indices_partition_and_stratify():
    y = np.repeat(np.arange(3), [10, 20, 7])
    folds = kan.kfold_indices(jax.random.key(0), y, 5)
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(37))
    for tr, va in folds:
        assert not set(tr) & set(va)
        counts = np.bincount(y[va], minlength=3)
        assert np.all(np.abs(counts - np.array([2, 4, 1.4])) <= 1)


def test_kfold_indices_regression_targets():
    y = np.asarray(jax.random.normal(jax.random.key(0), (12,)))
    # stratifying on continuous targets made every value a class and ignored the key
    with pytest.raises(ValueError, match="^y: stratified folds need class labels"):
        kan.kfold_indices(jax.random.key(0), y, 3)
    folds = [
        kan.kfold_indices(jax.random.key(s), y, 3, stratified=False) for s in (0, 1)
    ]
    for f in folds:
        assert sorted(np.concatenate([v for _, v in f]).tolist()) == list(range(12))
    assert any(
        set(a[1].tolist()) != set(b[1].tolist())
        for a, b in zip(folds[0], folds[1], strict=True)
    )
    # float labels holding whole numbers are classes
    yf = np.repeat(np.arange(3.0), 4)
    ints = kan.kfold_indices(jax.random.key(0), yf.astype(int), 4)
    for (_, a), (_, b) in zip(
        kan.kfold_indices(jax.random.key(0), yf, 4), ints, strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_crossval_scores_equal_a_manual_fold_loop():
    x = np.asarray(jax.random.normal(jax.random.key(3), (30, 4)))
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 2] > 0.5)
    folds = kan.kfold_indices(jax.random.key(1), y, 3)
    tc = kan.KANTrainConfig(epochs=3, batch_size=8, learning_rate=1e-2)
    cv = kan.crossval_feature_scores(
        jax.random.key(0),
        x,
        y,
        folds,
        cfg=CFG,
        train_cfg=tc,
        methods=("kan_l1", "kan_ko"),
    )
    k_init, k_train = jax.random.split(jax.random.key(0))
    p0 = kan.init_kan(k_init, CFG)
    grids = kan.kan_grids(CFG)
    for f, (tr, va) in enumerate(folds):
        mu, sd = x[tr].mean(0), x[tr].std(0)
        xtr, xva = (x[tr] - mu) / sd, (x[va] - mu) / sd
        n_max = max(len(t) for t, _ in folds)
        pad = n_max - len(tr)
        xp = np.concatenate([xtr, np.zeros((pad, 4))]).astype(np.float32)
        yp = np.concatenate([y[tr], np.zeros(pad, y.dtype)])
        w = np.concatenate([np.ones(len(tr)), np.zeros(pad)]).astype(np.float32)
        pk, _ = kan.train_kan(
            jax.random.split(k_train, 3)[f],
            p0,
            xp,
            yp,
            grids=grids,
            cfg=CFG,
            train_cfg=tc,
            weights=w,
        )
        l1 = kan.kan_l1(pk, jnp.asarray(xva, jnp.float32), grids=grids, cfg=CFG)
        np.testing.assert_allclose(cv.per_fold["kan_l1"][f], l1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        cv.mean["kan_ko"], cv.per_fold["kan_ko"].mean(0), rtol=1e-6
    )
    mean, std = kan.jaccard_stability(cv.per_fold["kan_l1"], 2)
    assert 0 <= mean <= 1 and std >= 0


def test_jaccard_and_redundancy_known_values():
    per_fold = jnp.array([[3.0, 2, 1, 0], [3.0, 2, 1, 0], [0.0, 2, 1, 3]])
    mean, std = kan.jaccard_stability(per_fold, 2)
    # pairs: {0,1}vs{0,1}=1, {0,1}vs{3,1}=1/3 (twice)
    assert mean == pytest.approx((1 + 2 / 3) / 3)
    assert std == pytest.approx(np.std([1, 1 / 3, 1 / 3]))
    a = np.arange(10.0)
    x = np.stack([a, 2 * a, -a, np.ones(10)], 1)
    assert kan.redundancy(x) == pytest.approx(1.0)
    assert kan.redundancy(x, [0, 3]) == 0.0


def test_jax_baselines():
    w = jnp.array([2.0, 0.0, -1.0])
    predict = lambda xi: jnp.stack([xi @ w, -(xi @ w)])
    x = jax.random.normal(jax.random.key(0), (200, 3))
    np.testing.assert_allclose(
        kan.gradient_saliency(predict, x), jnp.abs(w) / 3, rtol=1e-6
    )
    y = (x @ w > 0).astype(jnp.int32) * 0  # class 0 when the logit is large
    y = jnp.where(x @ w > 0, 0, 1)
    s = kan.permutation_importance(
        jax.random.key(1), predict, x, y, task="classification"
    )
    assert float(s[1]) == 0.0 and float(s[0]) > float(s[2]) > 0
    # legacy uint32 keys draw the same shuffles as typed keys
    legacy = kan.permutation_importance(
        jax.random.key_data(jax.random.key(1)), predict, x, y, task="classification"
    )
    np.testing.assert_array_equal(legacy, s)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p, g, x, y: kan.kan_l1(p, x[:, :3], grids=g, cfg=CFG), "x"),
        (
            lambda p, g, x, y: kan.kan_l1(p, x.at[0, 0].set(jnp.nan), grids=g, cfg=CFG),
            "x",
        ),
        (
            lambda p, g, x, y: kan.kan_l1(p, x, grids=g, cfg=CFG, variant="text"),
            "variant",
        ),
        (
            lambda p, g, x, y: kan.kan_si(p, x, grids=g, cfg=CFG, objective="loss"),
            "objective",
        ),
        (
            lambda p, g, x, y: kan.kan_ko(
                p, x, y[:3], grids=g, cfg=CFG, task="classification"
            ),
            "y",
        ),
        (lambda p, g, x, y: kan.kan_ko(p, x, y, grids=g, cfg=CFG, task="cls"), "task"),
        (
            lambda p, g, x, y: kan.crossval_feature_scores(
                jax.random.key(0), x, y, [], cfg=CFG, train_cfg=kan.KANTrainConfig()
            ),
            "folds",
        ),
        (
            lambda p, g, x, y: kan.crossval_feature_scores(
                jax.random.key(0),
                x,
                y,
                [(np.arange(3), np.arange(3))],
                cfg=CFG,
                train_cfg=kan.KANTrainConfig(),
                methods=("kan_sobol",),
            ),
            "methods",
        ),
    ],
)
def test_bad_inputs_raise(call, match):
    params, grids, x, y = _setup()
    with pytest.raises((ValueError, TypeError), match=match):
        call(params, grids, x, y)


def test_dataclass_replace_keeps_validation():
    with pytest.raises(ValueError, match="grid_size"):
        dataclasses.replace(CFG, grid_size=0)
