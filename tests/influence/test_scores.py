"""Scores: exact LOO identities, LR retraining, batching, chunking, PBRF, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxfeat import influence, ntk
from jaxfeat._src.testing import assert_close, rel_fro
from tests.influence._common import MLP, apply_fn, dense_ggn, mlp_problem


def linear_fn(theta, x):
    return jnp.atleast_1d(x @ theta)


def test_ridge_loo_equals_if_over_one_minus_leverage(key, x64):
    n, d, lam = 200, 10, 1.0
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (n, d))
    y = (x @ jnp.linspace(-1, 1, d) + 0.3 * jax.random.normal(ky, (n,)))[:, None]
    h = x.T @ x + lam * jnp.eye(d)
    theta = jnp.linalg.solve(h, x.T @ y[:, 0])
    # mean-loss curvature X^T X / n with damping lam / n is H / n.
    cfg = influence.IHVPConfig(
        strategy="exact", loss="mse", curvature="hessian", damping=lam / n
    )
    state = influence.fit_curvature(linear_fn, theta, x, y, cfg=cfg)
    lf = influence.example_loss_fn(linear_fn, "mse")
    g = influence.per_example_grads(lf, theta, x, y)  # x_i r_i
    if_change = influence.ihvp(state, g) / n  # H^{-1} x_i r_i
    lev = jnp.einsum("nd,nd->n", x, jnp.linalg.solve(h, x.T).T)

    def loo(i):
        w = jnp.ones(n).at[i].set(0.0)
        return jnp.linalg.solve(h - jnp.outer(x[i], x[i]), x.T @ (w * y[:, 0]))

    actual = jax.vmap(loo)(jnp.arange(n)) - theta[None]
    err = float(jnp.max(jnp.abs(actual - if_change / (1 - lev)[:, None])))
    assert err < 1e-10, err  # spec §4.1 reports 1.3e-15 (float64)


def _lr_objective(theta, x, y, w, lam):
    lf = influence.example_loss_fn(_lr_fn, "cross_entropy")
    losses = jax.vmap(lf, in_axes=(None, 0, 0))(theta, x, y)
    return jnp.sum(w * losses) + 0.5 * lam * jnp.sum(theta**2)


def _lr_fn(theta, x):  # binary logistic regression as 2-class softmax
    return jnp.stack([jnp.zeros_like(x[0]), x @ theta])


def _newton(theta, x, y, w, lam, steps):
    def step(_, t):
        g = jax.grad(_lr_objective)(t, x, y, w, lam)
        return t - jnp.linalg.solve(jax.hessian(_lr_objective)(t, x, y, w, lam), g)

    return jax.lax.fori_loop(0, steps, step, theta)


def test_logistic_regression_influence_matches_loo_retraining(key, x64):
    n, d, lam = 200, 10, 1e-2
    kx, kw, kq = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n + 5, d))
    logits = x @ jax.random.normal(kw, (d,))
    y = (jax.random.uniform(kq, (n + 5,)) < jax.nn.sigmoid(logits)).astype(jnp.int32)
    xq, yq, x, y = x[n:], y[n:], x[:n], y[:n]
    theta = _newton(jnp.zeros(d), x, y, jnp.ones(n), lam, 30)
    cfg = influence.IHVPConfig(strategy="exact", curvature="hessian", damping=lam / n)
    state = influence.fit_curvature(_lr_fn, theta, x, y, cfg=cfg)
    scores = influence.pairwise_scores(state, theta, xq, yq, x, y) / n

    lf = influence.example_loss_fn(_lr_fn, "cross_entropy")
    retrain = lambda i: _newton(theta, x, y, jnp.ones(n).at[i].set(0.0), lam, 6)
    loo = jax.jit(jax.vmap(retrain))(jnp.arange(n))  # warm-started Newton
    base = influence.per_example_losses(lf, theta, xq, yq)
    after = jax.vmap(lambda t: influence.per_example_losses(lf, t, xq, yq))(loo)
    actual = (after - base[None]).T  # removing m changes query loss by ~ +score
    r = [np.corrcoef(scores[q], actual[q])[0, 1] for q in range(xq.shape[0])]
    assert min(r) >= 0.98, r  # spec §4.2 reports 0.9987 (n=500, d=20)


def _mlp_state(key, strategy="ekfac", **kw):
    params, x, y = mlp_problem(key, n=10)
    cfg = influence.IHVPConfig(strategy=strategy, **kw)
    model = MLP if strategy in ("kfac", "ekfac") else apply_fn
    return influence.fit_curvature(model, params, x, y, cfg=cfg), params, x, y


def test_query_batching_full_rank_equals_full_scores(key):
    state, params, x, y = _mlp_state(key)
    full = influence.pairwise_scores(state, params, x[:4], y[:4], x, y)
    lr = influence.pairwise_scores(state, params, x[:4], y[:4], x, y, query_rank=64)
    assert rel_fro(lr, full) < 1e-5
    r1 = influence.pairwise_scores(state, params, x[:4], y[:4], x, y, query_rank=1)
    assert rel_fro(r1, full) > 1e-3  # rank 1 truncates (the check can fail)


def test_mlp_factored_path_matches_generic_path(key):
    state, params, x, y = _mlp_state(key, strategy="exact", damping=0.1)
    mlp_state = influence.fit_curvature(
        MLP, params, x, y, cfg=influence.IHVPConfig(strategy="exact", damping=0.1)
    )
    a = influence.pairwise_scores(state, params, x[:3], y[:3], x, y)
    b = influence.pairwise_scores(mlp_state, params, x[:3], y[:3], x, y)
    assert_close(b, a, kind="factorization")
    # the same scores by hand: g_q^T ihvp(g_m)
    lf = influence.example_loss_fn(apply_fn, "cross_entropy")
    gq = influence.per_example_grads(lf, params, x[:3], y[:3])
    gm = influence.per_example_grads(lf, params, x, y)
    pq = influence.ihvp(state, gq)
    flat = jax.vmap(lambda t: ravel_pytree(t)[0])
    assert_close(a, flat(pq) @ flat(gm).T, kind="factorization")


@pytest.mark.parametrize("strategy", ["ekfac", "exact"])
def test_scores_invariant_to_chunk_size_and_layers_sum(key, strategy):
    state, params, x, y = _mlp_state(key, strategy=strategy, damping=0.1)
    full = influence.pairwise_scores(state, params, x[:3], y[:3], x, y)
    chunked = influence.pairwise_scores(
        state, params, x[:3], y[:3], x, y, chunk_size=3, progress=True
    )
    assert_close(chunked, full, kind="identity")
    layers = influence.pairwise_scores(
        state, params, x[:3], y[:3], x, y, per_layer=True
    )
    assert layers.shape == (2, 3, 10)
    assert_close(jnp.sum(layers, axis=0), full, kind="identity")
    self_s = influence.self_scores(state, params, x, y, chunk_size=4)
    diag = influence.pairwise_scores(state, params, x, y, x, y)
    assert_close(self_s, jnp.diag(diag), kind="factorization")


def test_pbrf_finite_difference_matches_damped_ggn_influence(key, x64):
    params, x, y = mlp_problem(key, n=8)
    lam, n = 0.1, 8
    cfg = influence.IHVPConfig(strategy="exact", damping=lam)
    state = influence.fit_curvature(apply_fn, params, x, y, cfg=cfg)
    score = influence.pairwise_scores(state, params, x[:1], y[:1], x[2:3], y[2:3])[0, 0]
    eps = 1e-3 / n
    lf = influence.example_loss_fn(apply_fn, "cross_entropy")
    kw = dict(model=apply_fn, loss="cross_entropy", damping=lam)
    resp = [
        influence.pbrf_response(params, x, y, x[2], y[2], s * eps, **kw)
        for s in (1.0, -1.0)
    ]
    fq = [influence.per_example_losses(lf, r, x[:1], y[:1])[0] for r in resp]
    fd = (fq[0] - fq[1]) / (2 * eps)  # d query loss / d eps = -score
    assert abs(fd + score) / abs(score) < 1e-2
    # theta^s minimises the objective at eps = 0 (gradient zero)
    g = jax.grad(influence.pbrf_objective)(params, params, x, y, x[2], y[2], 0.0, **kw)
    assert float(jnp.max(jnp.abs(ravel_pytree(g)[0]))) < 1e-12


def _seq3(params, x):  # per-token dense layers, T = K = 3 (square outputs)
    return (
        jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"]
        + params["b2"][None]
    )


def test_pbrf_of_a_sequence_output_uses_the_full_inner_product(key, x64):
    """T = K = 3: `gs @ (f - fs)` would be a (3, 3) matrix product (silently
    wrong); the Bregman term needs <gs, f - fs> summed over positions and classes.
    Checked as in the vector case: zero gradient at theta^s, and the central
    difference of the query loss along the PBRF response equals -score (both
    O(eps^2) = 1e-10 accurate; the audit measured agreement to 1.5e-9)."""
    ks = jax.random.split(key, 6)
    params = {
        "w1": jax.random.normal(ks[0], (2, 4)),
        "b1": 0.3 * jax.random.normal(ks[1], (4,)),
        "w2": jax.random.normal(ks[2], (4, 3)),
        "b2": 0.3 * jax.random.normal(ks[3], (3,)),
    }
    x = jax.random.normal(ks[4], (6, 3, 2))
    y = jax.random.randint(ks[5], (6, 3), 0, 3)
    kw = dict(model=_seq3, loss="cross_entropy", damping=0.1)
    g = jax.grad(influence.pbrf_objective)(params, params, x, y, x[0], y[0], 0.0, **kw)
    assert float(jnp.max(jnp.abs(ravel_pytree(g)[0]))) < 1e-12
    cfg = influence.IHVPConfig(strategy="exact", damping=0.1)
    state = influence.fit_curvature(_seq3, params, x, y, cfg=cfg)
    score = influence.pairwise_scores(state, params, x[:1], y[:1], x[2:3], y[2:3])
    eps = 1e-5
    lf = influence.example_loss_fn(_seq3, "cross_entropy")
    fq = [
        lf(influence.pbrf_response(params, x, y, x[2], y[2], s * eps, **kw), x[0], y[0])
        for s in (1.0, -1.0)
    ]
    fd = (fq[0] - fq[1]) / (2 * eps)  # d query loss / d eps = -score
    assert abs(fd + score[0, 0]) / abs(score[0, 0]) < 1e-7


def test_pbrf_inputs_are_validated(key):
    params, x, y = mlp_problem(key, n=6)
    kw = dict(model=MLP, loss="cross_entropy")
    obj = lambda *a, damping=0.1, eps=0.0: influence.pbrf_objective(
        *a, eps, damping=damping, **kw
    )
    resp = lambda *a, damping=0.1, eps=1e-3: influence.pbrf_response(
        *a, eps, damping=damping, **kw
    )
    with pytest.raises(ValueError, match=r"^damping: expected values >= 0"):
        obj(params, params, x, y, x[0], y[0], damping=-1.0)
    with pytest.raises(ValueError, match=r"^damping: expected values > 0"):
        resp(params, x, y, x[0], y[0], damping=0.0)  # the docstring's lambda > 0
    with pytest.raises(ValueError, match=r"^eps: expected finite"):
        obj(params, params, x, y, x[0], y[0], eps=float("nan"))
    with pytest.raises(ValueError, match=r"^eps: expected finite"):
        resp(params, x, y, x[0], y[0], eps=float("inf"))
    with pytest.raises(ValueError, match=r"^x: expected finite"):
        resp(params, x.at[0, 0].set(jnp.nan), y, x[0], y[0])
    with pytest.raises(ValueError, match=r"^x_z: expected one example of shape"):
        obj(params, params, x, y, x[:2], y[:2])
    with pytest.raises(ValueError, match=r"^x_z: expected one example of shape"):
        resp(params, x, y, x[:2], y[:2])
    with pytest.raises(ValueError, match=r"^params: expected the structure"):
        obj(params[:1], params, x, y, x[0], y[0])
    with pytest.raises(ValueError, match=r"^y_z: expected class labels in \[0, 3\)"):
        obj(params, params, x, y, x[0], y[0] + 5)


def test_labels_and_targets_are_validated(key):
    params, x, y = mlp_problem(key)
    cfg = influence.IHVPConfig(strategy="ekfac", fisher="empirical")
    fit = lambda yy, **kw: influence.fit_curvature(
        MLP, params, x, yy, cfg=dataclasses.replace(cfg, **kw)
    )
    for bad in (y.at[0].set(3), y.at[0].set(-1)):  # outside [0, k)
        with pytest.raises(ValueError, match=r"^y: expected class labels in \[0, 3\)"):
            fit(bad)
    with pytest.raises(TypeError, match=r"^y: expected integer class labels"):
        fit(y.astype(jnp.float32))
    with pytest.raises(TypeError, match=r"^y: expected integer class labels"):
        fit(jax.nn.one_hot(y, 3))  # one-hot (float) labels
    with pytest.raises(ValueError, match=r"^y: expected integer class labels of sha"):
        fit(jnp.stack([y, y], axis=1))  # integer but not one index per example
    with pytest.raises(ValueError, match=r"^y: expected targets of shape \(8, 3\)"):
        fit(jnp.zeros((8,)), loss="mse")  # would broadcast against (3,) outputs
    with pytest.raises(ValueError, match=r"^y: expected finite"):
        fit(jnp.zeros((8, 3)).at[0, 0].set(jnp.nan), loss="mse")
    state = fit(y)
    with pytest.raises(ValueError, match=r"^y_query: expected class labels in"):
        influence.pairwise_scores(state, params, x[:2], y[:2].at[0].set(7), x, y)
    with pytest.raises(ValueError, match=r"^y_train: expected class labels in"):
        influence.pairwise_scores(state, params, x[:2], y[:2], x, y.at[3].set(-2))
    with pytest.raises(ValueError, match=r"^y: expected class labels in"):
        influence.self_scores(state, params, x, y.at[3].set(9))
    lf = influence.example_loss_fn(MLP, "cross_entropy")
    for fn in (influence.per_example_losses, influence.per_example_grads):
        with pytest.raises(ValueError, match=r"^y: expected class labels in"):
            fn(lf, params, x, y.at[0].set(7))
        with pytest.raises(TypeError, match=r"^y: expected integer class labels"):
            fn(lf, params, x, y + 0.7)
    factors = lambda xx, yy, loss="cross_entropy": influence.dense_grad_factors(
        params, xx, yy, mlp=MLP, loss=loss
    )
    with pytest.raises(ValueError, match=r"^y: expected class labels in"):
        factors(x, y.at[0].set(7))
    with pytest.raises(TypeError, match=r"^y: expected integer class labels"):
        factors(x, y + 0.7)
    with pytest.raises(ValueError, match=r"^y: expected finite"):
        factors(x, jnp.zeros((8, 3)).at[0, 0].set(jnp.nan), loss="mse")
    with pytest.raises(ValueError, match=r"^x: expected finite"):
        factors(x.at[1, 0].set(jnp.nan), y)
    with pytest.raises(ValueError, match=r"^x: expected a batch of at least one"):
        influence.fit_curvature(MLP, params, x[:0], y[:0], cfg=cfg)  # blamed damping
    mse = fit(jnp.zeros((8, 3)), loss="mse")
    with pytest.raises(ValueError, match=r"^y_train: expected finite"):
        influence.pairwise_scores(
            mse,
            params,
            x[:2],
            jnp.zeros((2, 3)),
            x,
            jnp.zeros((8, 3)).at[1].set(jnp.nan),
        )
    with pytest.raises(ValueError, match=r"^y_query: expected targets of shape"):
        influence.pairwise_scores(
            mse, params, x[:2], jnp.zeros((2, 1)), x, jnp.zeros((8, 3))
        )


def test_singular_damped_curvature_raises_at_fit_naming_damping(key):
    """G of 8 examples x 3 classes (rank <= 16) has p = 31 parameters: damping 0
    leaves zero eigenvalues, and the solve would return NaN/inf."""
    params, x, y = mlp_problem(key)
    for strategy, model in (("exact", apply_fn), ("ekfac", MLP), ("kfac", MLP)):
        cfg = influence.IHVPConfig(strategy=strategy, damping=0.0)
        # float32 here: the error also points to float64 (a margin too small for
        # float32 round-off is a common cause with the default damping)
        with pytest.raises(
            ValueError, match=r"^damping: .*singular.*increase damping, or .*float64"
        ):
            influence.fit_curvature(model, params, x, y, cfg=cfg)
    # damping=None is 0.1 x mean(Lambda) = 0 for a layer whose output gradients all
    # vanish (zero weights after it): the first layer's Lambda is all zero.
    dead = (params[0], ntk.Dense(jnp.zeros_like(params[1].w), params[1].b))
    with pytest.raises(ValueError, match=r"^damping: .* dense layer 0 .*"):
        influence.fit_curvature(
            MLP, dead, x, y, cfg=influence.IHVPConfig(strategy="ekfac")
        )
    # a positive damping of the same problems fits and solves to finite values
    st = influence.fit_curvature(
        apply_fn, params, x, y, cfg=influence.IHVPConfig(strategy="exact", damping=1e-3)
    )
    assert bool(jnp.all(jnp.isfinite(ravel_pytree(influence.ihvp(st, params))[0])))


def test_diverging_lissa_names_lissa_scale(key, x64):
    """LiSSA contracts only for a scale c > rho(G + lambda I) / 2. At c = 0.45 rho
    the error grows as 1.22^500 ~ 1e43: finite in float64, so only the fit-time
    check against the power-iteration bound can see it."""
    params, x, y = mlp_problem(key)
    rho = float(jnp.linalg.eigvalsh(dense_ggn(params, x))[-1]) + 0.1
    cfg = lambda c: influence.IHVPConfig(
        strategy="lissa", damping=0.1, lissa_scale=c, lissa_iters=500
    )
    for c in (1e-3, 0.45 * rho):
        with pytest.raises(ValueError, match=r"^lissa_scale: .*diverges .*"):
            influence.fit_curvature(apply_fn, params, x, y, cfg=cfg(c))
    state = influence.fit_curvature(apply_fn, params, x, y, cfg=cfg(0.55 * rho))
    assert float(state.factors.radius) == pytest.approx(rho, rel=1e-3)
    # a diverging scale that got past the fit (here set by hand) overflows and
    # is named on the result
    state = dataclasses.replace(
        state, factors=state.factors._replace(scale=jnp.asarray(1e-3))
    )
    with pytest.raises(ValueError, match=r"^lissa_scale: the LiSSA recursion diverged"):
        influence.ihvp(state, params)
    with pytest.raises(ValueError, match=r"^lissa_scale: the LiSSA recursion diverged"):
        influence.pairwise_scores(state, params, x[:2], y[:2], x, y)
    # c = 0.45 rho by hand: the error grows to ~1e43 and stays finite in float64;
    # the residual check turns it into NaN, named like an overflow
    slow = dataclasses.replace(
        state, factors=state.factors._replace(scale=jnp.asarray(0.45 * rho))
    )
    with pytest.raises(ValueError, match=r"^lissa_scale: the LiSSA recursion diverged"):
        influence.ihvp(slow, params)
    under_jit = jax.jit(influence.ihvp)(slow, params)
    assert bool(jnp.all(jnp.isnan(ravel_pytree(under_jit)[0])))


def test_lissa_scale_on_softmax_null_direction(x64):
    """Multinomial logistic regression with a bias: every logit shifted equally is
    a null direction of G, and the all-ones parameter vector is one. Power iteration
    from it stalled at lambda (scale 1.5 lambda = 0.42 < rho/2 = 0.445), and LiSSA
    returned ~1e24 scores, finite in float64. From a generic start it finds rho
    to 1% and matches the exact solve (float64; 500 steps at contraction
    1 - lambda/c ~ 0.79 leave ~1e-50)."""
    mlp = ntk.MLPConfig(
        in_dim=5, widths=(), out_dim=3, parameterization="standard", b_std=1.0
    )
    params = ntk.init_mlp(jax.random.key(0), mlp, jnp.float64)
    x = jax.random.normal(jax.random.key(1), (50, 5))
    y = jax.random.randint(jax.random.key(2), (50,), 0, 3)
    fit = lambda s: influence.fit_curvature(
        mlp, params, x, y, cfg=influence.IHVPConfig(strategy=s, damping=0.28)
    )
    exact, lissa = fit("exact"), fit("lissa")
    rho = float(exact.factors.evals.max()) + 0.28
    # 30 power steps: a Rayleigh quotient, so a lower bound; close from a generic
    # start (was 0.280 = lambda from the all-ones vector)
    assert 0.99 * rho <= float(lissa.factors.radius) <= rho * (1 + 1e-12)
    want = influence.pairwise_scores(exact, params, x[:2], y[:2], x[:5], y[:5])
    got = influence.pairwise_scores(lissa, params, x[:2], y[:2], x[:5], y[:5])
    assert rel_fro(got, want) < 1e-8, rel_fro(got, want)


def test_lissa_refuses_indefinite_damped_hessian(x64):
    """LiSSA diverges on an indefinite H + lambda I for every scale (a negative
    eigenvalue e gives growth |1 - e/c| > 1): here min eig -0.19 at damping 0.5,
    and the recursion returned ~1e7 scores (finite). The fit now refuses it,
    naming `damping`; a damping that makes it positive definite is accepted and
    matches the exact solve."""
    mlp = ntk.MLPConfig(
        in_dim=3,
        widths=(4,),
        out_dim=2,
        activation="tanh",
        parameterization="standard",
        b_std=0.5,
    )
    params = ntk.init_mlp(jax.random.key(0), mlp, jnp.float64)
    x = jax.random.normal(jax.random.key(1), (15, 3))
    y = jax.random.normal(jax.random.key(3), (15, 2))
    cfg = lambda s, d: influence.IHVPConfig(
        strategy=s, loss="mse", curvature="hessian", damping=d, lissa_iters=3000
    )
    exact = influence.fit_curvature(mlp, params, x, y, cfg=cfg("exact", 0.5))
    low = float(exact.factors.evals.min())
    assert low + 0.5 < 0  # the damped Hessian is indefinite
    with pytest.raises(ValueError, match=r"^damping: the damped Hessian .*indefinite"):
        influence.fit_curvature(mlp, params, x, y, cfg=cfg("lissa", 0.5))
    d = 1.0 - low  # smallest damped eigenvalue 1
    exact = influence.fit_curvature(mlp, params, x, y, cfg=cfg("exact", d))
    lissa = influence.fit_curvature(mlp, params, x, y, cfg=cfg("lissa", d))
    v = jax.tree_util.tree_map(jnp.ones_like, params)
    got = ravel_pytree(influence.ihvp(lissa, v))[0]
    want = ravel_pytree(influence.ihvp(exact, v))[0]
    assert rel_fro(got, want) < 1e-8, rel_fro(got, want)


@pytest.mark.parametrize("strategy", ["cg", "lissa"])
def test_matrix_free_solvers_refuse_zero_damping(strategy):
    """The GGN here has rank 16 of p = 31: an undamped CG returned scores (max
    114) twice those of damping 1e-3 with no error; nothing can check G's rank."""
    with pytest.raises(ValueError, match=rf"^damping: strategy='{strategy}'"):
        influence.IHVPConfig(strategy=strategy, damping=0.0)


def test_config_sizes_are_python_ints_and_damping_finite(no_runtime_types):
    with pytest.raises(ValueError, match=r"^damping: expected a finite float"):
        influence.IHVPConfig(damping=float("inf"))
    with pytest.raises(ValueError, match=r"^lissa_scale: expected a finite float"):
        influence.IHVPConfig(lissa_scale=float("inf"))
    with pytest.raises(ValueError, match=r"^damping: expected a finite float"):
        influence.IHVPConfig(damping=True)  # a bool is a Real: was lambda = 1
    for tol in (1.0, 1e30, float("inf")):  # CG stopped before its first step: 0
        with pytest.raises(ValueError, match=r"^cg_tol: expected a float in \(0, 1\)"):
            influence.IHVPConfig(strategy="cg", cg_tol=tol)
    for name in ("n_samples", "cg_maxiter", "lissa_iters", "arnoldi_rank"):
        with pytest.raises(TypeError, match=rf"^{name}: expected a Python int"):
            influence.IHVPConfig(**{name: 2.0})
    assert influence.IHVPConfig(n_samples=np.int64(2)).n_samples == 2


def test_sizes_of_calls_are_python_ints(key, no_runtime_types):
    params, x, y = mlp_problem(key)
    state = influence.fit_curvature(MLP, params, x, y, cfg=influence.IHVPConfig())
    with pytest.raises(TypeError, match=r"^chunk_size: expected a Python int"):
        influence.fit_curvature(MLP, params, x, y, cfg=state.cfg, chunk_size=2.0)
    with pytest.raises(TypeError, match=r"^chunk_size: expected a Python int"):
        influence.pairwise_scores(state, params, x[:2], y[:2], x, y, chunk_size=2.0)
    with pytest.raises(TypeError, match=r"^query_rank: expected a Python int"):
        influence.pairwise_scores(state, params, x[:2], y[:2], x, y, query_rank=2.0)
    with pytest.raises(ValueError, match=r"^mat: expected shape \(q, o, i\)"):
        influence.low_rank_query(jnp.ones((4, 5)), 2)
    with pytest.raises(ValueError, match=r"^mat: expected finite"):
        influence.low_rank_query(jnp.ones((2, 4, 5)).at[0, 0, 0].set(jnp.nan), 2)
    with pytest.raises(ValueError, match=r"^grads: expected finite"):
        influence.random_projection(
            jax.random.key(0), jnp.ones((3, 5)).at[0, 0].set(jnp.nan), 4
        )


def test_random_projection_preserves_inner_products(key):
    g = {"a": jax.random.normal(key, (6, 40, 20))}
    p1 = influence.random_projection(jax.random.key(3), g, 512)
    p2 = influence.random_projection(jax.random.key(3), g, 512)
    assert_close(p1, p2, kind="identity")  # deterministic in the key
    flat = g["a"].reshape(6, -1)
    norms = jnp.linalg.norm(flat, axis=1)
    for kind in ("rademacher", "gaussian"):
        pr = influence.random_projection(jax.random.key(4), g, 512, kind=kind)
        dist = jnp.abs(pr @ pr.T - flat @ flat.T) / jnp.outer(norms, norms)
        assert float(jnp.max(dist)) < 5 / np.sqrt(512)  # JL: O(1/sqrt(k))


def test_per_example_grads_match_python_loop(key):
    params, x, y = mlp_problem(key, n=5)
    lf = influence.example_loss_fn(apply_fn, "cross_entropy")
    batched = influence.per_example_grads(lf, params, x, y)
    loop = [jax.grad(lf)(params, x[i], y[i]) for i in range(5)]
    assert_close(batched, jax.tree_util.tree_map(lambda *a: jnp.stack(a), *loop))
    losses = influence.per_example_losses(lf, params, x, y)
    assert_close(losses, jnp.stack([lf(params, x[i], y[i]) for i in range(5)]))
    # the factored form Ds a^T equals the true gradients (NTK scales included)
    facs = influence.dense_grad_factors(params, x, y, mlp=MLP)
    for (abar, ds), layer in zip(facs, batched, strict=True):
        mats = jax.vmap(influence.dense_matrix)(layer)
        assert_close(jnp.einsum("no,ni->noi", ds, abar), mats)
        assert_close(jax.vmap(influence.dense_from_matrix)(mats), layer)


def test_bad_inputs_raise(key):
    params, x, y = mlp_problem(key)
    with pytest.raises(ValueError, match=r"^damping: expected"):
        influence.IHVPConfig(damping=-1.0)
    with pytest.raises(ValueError, match=r"^strategy: expected one of"):
        influence.IHVPConfig(strategy="newton")
    with pytest.raises(ValueError, match=r"^fisher: expected one of"):
        influence.IHVPConfig(fisher="true")
    with pytest.raises(ValueError, match=r"^model: strategy 'ekfac'"):
        influence.fit_curvature(apply_fn, params, x, y, cfg=influence.IHVPConfig())
    with pytest.raises(ValueError, match=r"^key: fisher='sampled'"):
        influence.fit_curvature(
            MLP, params, x, y, cfg=influence.IHVPConfig(fisher="sampled")
        )
    nan = jax.tree_util.tree_map(lambda a: a.at[0].set(jnp.nan), params)
    with pytest.raises(ValueError, match=r"^params: expected finite"):
        influence.fit_curvature(MLP, nan, x, y, cfg=influence.IHVPConfig())
    state = influence.fit_curvature(MLP, params, x, y, cfg=influence.IHVPConfig())
    with pytest.raises(ValueError, match=r"^v: expected finite"):
        influence.ihvp(state, nan)
    with pytest.raises(ValueError, match=r"^x_query: expected example shape"):
        influence.pairwise_scores(state, params, x[:2, :2], y[:2], x, y)
    with pytest.raises(ValueError, match=r"^y_train: expected a leading axis"):
        influence.pairwise_scores(state, params, x[:2], y[:2], x, y[:3])
    with pytest.raises(ValueError, match=r"^params: expected parameters"):
        influence.pairwise_scores(state, params[:1], x[:2], y[:2], x, y)
    with pytest.raises(ValueError, match=r"^x_query: expected finite"):
        influence.pairwise_scores(state, params, x[:2].at[0].set(jnp.nan), y[:2], x, y)
    with pytest.raises(ValueError, match=r"^x_train: expected finite"):
        influence.pairwise_scores(state, params, x[:2], y[:2], x.at[1].set(jnp.nan), y)
    # self_scores names its own argument `x` (not `x_train`)
    with pytest.raises(ValueError, match=r"^x: expected finite"):
        influence.self_scores(state, params, x.at[1].set(jnp.nan), y)
    with pytest.raises(ValueError, match=r"^y: expected a leading axis"):
        influence.self_scores(state, params, x, y[:3])


def test_new_query_count_in_a_bucket_reuses_the_compiled_programs(key):
    """3 and 5 queries share the padded bucket of 8: no new trace of the query
    preparation or the chunk program (spec §5.8), and the padding is dropped."""
    from jaxfeat.influence import _scores

    params, x, y = mlp_problem(key, n=12)
    state = influence.fit_curvature(
        MLP, params, x, y, cfg=influence.IHVPConfig(strategy="ekfac")
    )
    s3 = influence.pairwise_scores(state, params, x[:3], y[:3], x, y)
    sizes = (_scores._prepare_jit._cache_size(), _scores._chunk_jit._cache_size())
    s5 = influence.pairwise_scores(state, params, x[:5], y[:5], x, y)
    assert (_scores._prepare_jit._cache_size(), _scores._chunk_jit._cache_size()) == (
        sizes
    )
    assert s3.shape == (3, 12) and s5.shape == (5, 12)
    # the padded rows differ, and a re-tiered compile may reorder float ops
    assert_close(s5[:3], s3, kind="identity")
    buckets = [_scores.query_bucket(q) for q in (1, 5, 9, 200, 256, 1000)]
    assert buckets == [8, 8, 16, 224, 256, 1024]


def test_empty_batches_scalar_outputs_and_bad_leaves_are_named(key):
    """Found by review: an empty training set crashed with ZeroDivisionError in
    the chunking, a scalar-output model with IndexError deep in the solve, NaN
    parameters gave NaN PBRF results, and an integer v a NumPy ufunc error."""
    params, x, y = mlp_problem(key)
    state = influence.fit_curvature(
        MLP, params, x, y, cfg=influence.IHVPConfig(strategy="exact", damping=0.1)
    )
    with pytest.raises(ValueError, match=r"^x_train: expected a batch of at least"):
        influence.pairwise_scores(state, params, x[:2], y[:2], x[:0], y[:0])
    with pytest.raises(ValueError, match=r"^x: expected a batch of at least"):
        influence.self_scores(state, params, x[:0], y[:0])
    g = influence.per_example_grads(
        influence.example_loss_fn(MLP, "cross_entropy"), params, x, y
    )
    empty = jax.tree_util.tree_map(lambda a: a[:0], g)
    assert influence.random_projection(key, empty, 4).shape == (0, 4)

    scalar = lambda p, xi: apply_fn(p, xi)[0]
    with pytest.raises(ValueError, match="^model: expected an output of shape"):
        influence.fit_curvature(
            scalar, params, x, x[:, 0], cfg=influence.IHVPConfig(loss="mse")
        )

    nan_params = jax.tree_util.tree_map(lambda a: a.at[0].set(jnp.nan), params)
    kw = dict(model=MLP, loss="cross_entropy", damping=0.1)
    with pytest.raises(ValueError, match="^params_s: expected finite"):
        influence.pbrf_response(nan_params, x, y, x[0], y[0], 0.1, **kw)
    with pytest.raises(ValueError, match="^params: expected finite"):
        influence.pbrf_objective(nan_params, params, x, y, x[0], y[0], 0.1, **kw)

    wide = jnp.ones((3, x.shape[1] + 1))  # queries and training set agree, not f
    with pytest.raises(ValueError, match=r"^x_query: the model fails on one example"):
        influence.pairwise_scores(state, params, wide, y[:3], wide, y[:3])

    ints = jax.tree_util.tree_map(lambda a: jnp.ones(a.shape, jnp.int32), params)
    with pytest.raises(TypeError, match="^v: expected floating-point leaves"):
        influence.ihvp(state, ints)
