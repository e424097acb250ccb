"""Data-selection primitives (LESS, TAROT, BIDS) against independent references.

References: an optax `scale_by_adam` update, a NumPy aggregation loop, the exact
assignment cost from scipy (OT between equal-size uniform sets is an assignment
problem) and closed-form properties of whitening and z-scoring (spec §5.17-19).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxfeat import influence


def _normal(seed, *shape):
    return jax.random.normal(jax.random.key(seed), shape)


def test_adam_features_match_an_optax_update():
    """Gamma = m'/sqrt(v' + 1e-8) with m', v' the moments optax stores after one
    update from the warm-up state (float32 identity: rel < 1e-6)."""
    params = {"w": _normal(0, 3, 2), "b": _normal(1, 2)}
    opt = optax.scale_by_adam()
    state = opt.init(params)
    for s in range(3):  # a warmed-up state
        g = jax.tree_util.tree_map(lambda p, s=s: jnp.sin(p * (s + 1)), params)
        _, state = opt.update(g, state)
    grads = {"w": _normal(2, 4, 3, 2), "b": _normal(3, 4, 2)}
    feats = influence.adam_features(grads, state.mu, state.nu)
    for i in range(4):
        gi = jax.tree_util.tree_map(lambda a, i=i: a[i], grads)
        _, new = opt.update(gi, state)
        m = jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(new.mu)])
        v = jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(new.nu)])
        np.testing.assert_allclose(feats[i], m / jnp.sqrt(v + 1e-8), rtol=1e-6)
    with pytest.raises(ValueError, match="mu/nu"):
        influence.adam_features(grads, {"w": jnp.zeros(1)}, state.nu)


def test_less_scores_are_mean_then_max_of_cosines():
    tr, va = _normal(0, 6, 5), _normal(1, 7, 5)
    tasks = jnp.array([0, 0, 1, 2, 2, 2, 1])
    got = influence.less_scores(tr, va, tasks, 3)
    trn = np.asarray(tr) / np.linalg.norm(tr, axis=1, keepdims=True)
    van = np.asarray(va) / np.linalg.norm(va, axis=1, keepdims=True)
    cos = trn @ van.T
    ref = np.max([cos[:, np.asarray(tasks) == k].mean(1) for k in range(3)], axis=0)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    with pytest.raises(ValueError, match="val_feats"):
        influence.less_scores(tr, va[:, :4], tasks, 3)


def test_whitening_and_cost(x64):
    c, t = _normal(0, 30, 4) * jnp.array([[5.0, 1, 0.2, 1]]), _normal(1, 20, 4)
    cw, tw = influence.whitened_features(c, t, ridge=1e-5, normalize=False)
    f = jnp.concatenate([cw, tw])
    cov = f.T @ f / f.shape[0]
    # W^T (cov + ridge I) W = I exactly, so cov(F W) = I - ridge W^T W
    assert float(jnp.max(jnp.abs(cov - jnp.eye(4)))) < 1e-3
    ch, th = influence.whitened_features(c, t)
    np.testing.assert_allclose(jnp.linalg.norm(ch, axis=1), 1.0, rtol=1e-12)
    direct = jnp.linalg.norm(ch[:, None] - th[None], axis=-1)
    np.testing.assert_allclose(influence.ot_cost(ch, th), direct, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="ridge"):
        influence.whitened_features(c, t, ridge=0.0)


def test_whitening_below_float32_resolution_names_ridge():
    """More features (256) than rows (100) make the covariance singular; at feature
    scale 100 the default ridge 1e-5 is below float32's resolution of its largest
    variance (~1e4 x 1e-7 = 1e-3), the Cholesky gave NaN and the error named
    `feats`, an argument of another function. It names `ridge` now; a ridge the
    dtype resolves whitens (rows unit norm)."""
    c = 100 * _normal(0, 60, 256).astype(jnp.float32)
    t = 100 * _normal(1, 40, 256).astype(jnp.float32)
    with pytest.raises(ValueError, match="^ridge: the covariance plus ridge"):
        influence.whitened_features(c, t)
    ch, _ = influence.whitened_features(c, t, ridge=10.0)
    np.testing.assert_allclose(jnp.linalg.norm(ch, axis=1), 1.0, rtol=1e-5)


def test_sinkhorn_marginals_and_assignment_cost(x64):
    from scipy.optimize import linear_sum_assignment

    a, b = _normal(0, 12, 3), _normal(1, 12, 3)
    cost = jnp.linalg.norm(a[:, None] - b[None], axis=-1)
    plan, val = influence.sinkhorn(cost, epsilon=1e-3, n_iter=3000)
    np.testing.assert_allclose(plan.sum(1), 1 / 12, atol=1e-3 / 12)
    np.testing.assert_allclose(plan.sum(0), 1 / 12, atol=1e-3 / 12)
    rows, cols = linear_sum_assignment(np.asarray(cost))
    exact = float(np.asarray(cost)[rows, cols].mean())
    # entropic bias is O(epsilon log n^2) ~ 5e-3 at most (marginals within 1e-3)
    assert abs(float(val) - exact) < 5e-3
    # zero weights drop rows: the same as transporting the subset
    w = jnp.zeros(12).at[:6].set(1 / 6)
    _, sub = influence.sinkhorn(cost, a=w, epsilon=1e-2, n_iter=1000)
    _, ref = influence.sinkhorn(cost[:6], epsilon=1e-2, n_iter=1000)
    np.testing.assert_allclose(sub, ref, rtol=1e-8)


def test_tarot_select_is_seeded_and_prefers_target_like_candidates():
    key = jax.random.key(0)
    centre = _normal(2, 8)
    near = centre[None] + 0.3 * _normal(3, 15, 8)  # candidates like the targets
    far = -centre[None] + 0.3 * _normal(4, 15, 8)
    targets = centre[None] + 0.3 * _normal(5, 20, 8)
    ch, th = influence.whitened_features(jnp.concatenate([near, far]), targets)
    sel = influence.tarot_select(key, ch, th, n_folds=4)
    again = influence.tarot_select(key, ch, th, n_folds=4)
    assert bool(jnp.all(sel == again))
    # whitening equalises the near/far direction, so some far ones get in (13 vs 4)
    assert int(sel[:15].sum()) >= 2 * int(sel[15:].sum()) + 1


def test_bids_balances_tasks_unlike_top_k():
    """Task 0's raw scores are 10x larger: plain top-k takes mostly task 0,
    BIDS takes every task in turn (spec §5.19)."""
    n_per, n_tasks, m_per = 20, 3, 4
    key = jax.random.key(0)
    affinity = jnp.repeat(jnp.eye(n_tasks), n_per, axis=0)  # row i belongs to task
    a = jnp.repeat(affinity, m_per, axis=1) + 0.1 * jax.random.normal(
        key, (n_per * n_tasks, m_per * n_tasks)
    )
    scale = jnp.repeat(jnp.array([10.0, 1.0, 1.0]), m_per)
    a = a * scale[None]
    tasks = jnp.repeat(jnp.arange(n_tasks), m_per)
    budget = 15
    z = influence.column_zscore(a)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-6)
    owner = np.repeat(np.arange(n_tasks), n_per)
    top = np.argsort(-np.asarray(a.mean(1)))[:budget]
    assert np.mean(owner[top] == 0) >= 0.9
    picks = np.asarray(influence.bids_select(a, tasks, n_tasks, budget))
    assert len(set(picks.tolist())) == budget  # never picks twice
    counts = np.bincount(owner[picks], minlength=n_tasks)
    assert np.all(np.abs(counts - budget / n_tasks) <= 1), counts
    with pytest.raises(ValueError, match="budget"):
        influence.bids_select(a, tasks, n_tasks, 10_000)


def test_bids_picks_are_the_same_in_float64(x64_switch):
    """Under x64 the argmax indices are int64 and the picks int32: the scatter
    between them warned (an error under this suite's filterwarnings). The picks
    must equal float32's on well-separated scores."""
    a = np.asarray(_normal(5, 30, 6))
    tasks = np.array([0, 0, 1, 1, 2, 2])
    want = np.asarray(influence.bids_select(a, tasks, 3, 8))
    with x64_switch(True):
        got = influence.bids_select(a, tasks, 3, 8)
        assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), want)


def test_task_ids_are_validated():
    """Out-of-range or missing tasks used to be dropped silently (one_hot of an
    out-of-range id is a zero row), and a length mismatch gave a raw TypeError."""
    tr, va, a = _normal(0, 6, 5), _normal(1, 4, 5), _normal(2, 8, 4)
    bad = {
        r"^val_tasks: expected values in \[0, 2\)": jnp.array([0, 0, 1, 5]),
        r"^val_tasks: expected values in \[0, 2\).*-1": jnp.array([0, 1, -1, 1]),
        r"^val_tasks: every task .* none for tasks \[1\]": jnp.array([0, 0, 0, 0]),
        r"^val_tasks: expected shape \(4,\)": jnp.array([0, 1]),
    }
    for pattern, tasks in bad.items():
        with pytest.raises(ValueError, match=pattern):
            influence.less_scores(tr, va, tasks, 2)
        with pytest.raises(ValueError, match=pattern):
            influence.bids_select(a, tasks, 2, 3)
    with pytest.raises(TypeError, match=r"^val_tasks: expected integer"):
        influence.less_scores(tr, va, jnp.array([0.0, 1, 1, 0]), 2)


def test_sinkhorn_inputs_are_validated():
    c = jnp.abs(_normal(3, 4, 5))
    with pytest.raises(ValueError, match=r"^cost: expected shape \(n, m\)"):
        influence.sinkhorn(jnp.ones(4))
    with pytest.raises(ValueError, match=r"^cost: expected finite"):
        influence.sinkhorn(c.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"^a: expected shape \(4,\)"):
        influence.sinkhorn(c, a=jnp.ones(5) / 5)
    with pytest.raises(ValueError, match=r"^b: expected shape \(5,\)"):
        influence.sinkhorn(c, b=jnp.ones(4) / 4)
    with pytest.raises(ValueError, match=r"^a: expected values >= 0"):
        influence.sinkhorn(c, a=jnp.array([0.5, 0.7, -0.1, -0.1]))
    with pytest.raises(ValueError, match=r"^b: expected weights summing to 1"):
        influence.sinkhorn(c, b=jnp.ones(5))
    # valid weights with a zero entry still pass (one compiled shape for subsets)
    plan, _ = influence.sinkhorn(c, a=jnp.array([0.5, 0.5, 0.0, 0.0]))
    np.testing.assert_allclose(plan.sum(1), [0.5, 0.5, 0, 0], atol=1e-5)


def test_feature_helpers_name_bad_inputs():
    a, b = _normal(0, 3, 4), _normal(1, 5, 6)
    with pytest.raises(ValueError, match=r"^b: expected 4 features \(as a\)"):
        influence.ot_cost(a, b)
    with pytest.raises(ValueError, match=r"^target_hat: expected 4 features"):
        influence.tarot_select(jax.random.key(0), a, b)
    with pytest.raises(ValueError, match=r"^feats: expected finite"):
        influence.l2_normalize(a.at[0, 0].set(jnp.nan))


def test_adam_features_hyperparameters_are_validated():
    g, mu, nu = _normal(0, 3, 5), _normal(1, 5), jnp.abs(_normal(2, 5))
    with pytest.raises(ValueError, match=r"^b1: expected values in \[0.0, 1.0\)"):
        influence.adam_features(g, mu, nu, b1=1.5)
    with pytest.raises(ValueError, match=r"^b2: expected values in \[0.0, 1.0\)"):
        influence.adam_features(g, mu, nu, b2=-0.1)
    with pytest.raises(ValueError, match=r"^nu: expected values >= 0"):
        influence.adam_features(g, mu, -nu)
    with pytest.raises(ValueError, match=r"^grads: expected finite"):
        influence.adam_features(g.at[0, 0].set(jnp.nan), mu, nu)
