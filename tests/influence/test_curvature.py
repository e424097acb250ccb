"""Curvature strategies vs independent dense references (all under x64)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxfeat import influence, ntk
from jaxfeat._src.testing import assert_close, rel_fro
from tests.influence._common import (
    MLP,
    apply_fn,
    dense_ggn,
    label_grads,
    mlp_problem,
)

# The factors do not depend on the damping; 0 would make G + lambda I singular
# (softmax S has a null vector), which fit_curvature refuses.
DAMP = 0.1


def _cfg(**kw):
    return influence.IHVPConfig(**kw)


def _block_ggn(params, x):
    """Exact per-layer GGN blocks mean_n sum_c p_c vec(DW) vec(DW)^T."""
    mats, p = label_grads(params, x)
    return [jnp.einsum("nk,nkp,nkq->pq", p, m, m) / x.shape[0] for m in mats]


def test_kronecker_order_is_kron_S_A_for_one_example(key, x64):
    params, x, y = mlp_problem(key, n=1)
    state = influence.fit_curvature(
        MLP, params, x, y, cfg=_cfg(strategy="kfac", damping=DAMP)
    )
    for f, g in zip(state.factors, _block_ggn(params, x), strict=True):
        # N = 1: K-FAC is exact with row-major (o, i+1) vec <-> kron(S, A).
        assert rel_fro(jnp.kron(f.s, f.a), g) < 1e-10
        assert rel_fro(jnp.kron(f.a, f.s), g) > 1e-2  # the other order is wrong


def _ekfac_dense(f):
    q = jnp.kron(f.q_s, f.q_a)
    return q @ jnp.diag(f.lam.ravel()) @ q.T


def test_ekfac_trace_and_frobenius(key, x64):
    params, x, y = mlp_problem(key)
    state = influence.fit_curvature(
        MLP, params, x, y, cfg=_cfg(strategy="ekfac", damping=DAMP)
    )
    for f, g in zip(state.factors, _block_ggn(params, x), strict=True):
        g_ek, g_k = _ekfac_dense(f), jnp.kron(f.s, f.a)
        assert jnp.all(f.lam >= 0)
        np.testing.assert_allclose(jnp.trace(g_ek), jnp.trace(g), rtol=1e-8)
        assert jnp.linalg.norm(g - g_ek) <= jnp.linalg.norm(g - g_k)


def test_ekfac_ihvp_equals_dense_solve_in_its_eigenbasis(key, x64):
    params, x, y = mlp_problem(key)
    state = influence.fit_curvature(
        MLP, params, x, y, cfg=_cfg(strategy="ekfac", damping=None)
    )
    v = ntk.init_mlp(jax.random.fold_in(key, 1), MLP)
    out = influence.ihvp(state, v)
    for f, lam, vl, ol in zip(state.factors, state.damping, v, out, strict=True):
        g = _ekfac_dense(f) + lam * jnp.eye(f.lam.size)
        expected = jnp.linalg.solve(g, influence.dense_matrix(vl).ravel())
        assert rel_fro(influence.dense_matrix(ol).ravel(), expected) < 1e-8


def test_kfac_is_ekfac_with_kronecker_eigenvalues(key, x64):
    params, x, y = mlp_problem(key)
    ek = influence.fit_curvature(
        MLP, params, x, y, cfg=_cfg(strategy="ekfac", damping=0.1)
    )
    kf = influence.fit_curvature(
        MLP, params, x, y, cfg=_cfg(strategy="kfac", damping=0.1)
    )
    swapped = tuple(f._replace(lam=jnp.outer(f.eig_s, f.eig_a)) for f in ek.factors)
    ek2 = dataclasses.replace(ek, factors=swapped)
    v = ntk.init_mlp(jax.random.fold_in(key, 1), MLP)
    assert_close(influence.ihvp(ek2, v), influence.ihvp(kf, v), kind="factorization")
    for f, vl, ol in zip(kf.factors, v, influence.ihvp(kf, v), strict=True):
        g = jnp.kron(f.s, f.a) + 0.1 * jnp.eye(f.lam.size)  # K-FAC's dense form
        expected = jnp.linalg.solve(g, influence.dense_matrix(vl).ravel())
        assert rel_fro(influence.dense_matrix(ol).ravel(), expected) < 1e-8


def test_damping_none_is_a_tenth_of_mean_lambda_per_layer(key, x64):
    params, x, y = mlp_problem(key)
    state = influence.fit_curvature(MLP, params, x, y, cfg=_cfg(strategy="ekfac"))
    lams = [float(d) for d in state.damping]
    for f, d in zip(state.factors, lams, strict=True):
        np.testing.assert_allclose(d, 0.1 * float(jnp.mean(f.lam)), rtol=1e-12)
    assert abs(lams[0] - lams[1]) > 1e-6 * max(lams)  # per layer, not global
    fixed = influence.fit_curvature(
        MLP, params, x, y, cfg=_cfg(strategy="ekfac", damping=0.25)
    )
    assert all(float(d) == 0.25 for d in fixed.damping)


@pytest.mark.parametrize("strategy", ["exact", "cg", "lissa"])
def test_solvers_match_dense_solve(key, x64, strategy):
    params, x, y = mlp_problem(key)
    lam = 0.5
    cfg = _cfg(strategy=strategy, damping=lam, cg_tol=1e-10, lissa_iters=400)
    state = influence.fit_curvature(apply_fn, params, x, y, cfg=cfg)
    v = ntk.init_mlp(jax.random.fold_in(key, 1), MLP)
    g = dense_ggn(params, x)
    flat_v, _ = ravel_pytree(v)
    expected = jnp.linalg.solve(g + lam * jnp.eye(g.shape[0]), flat_v)
    got = ravel_pytree(influence.ihvp(state, v))[0]
    # exact: backward error; CG: 10 x tol; LiSSA: geometric rate
    # (1 - (lam_min + lam)/scale)^400; measured 3e-16 (CG 7e-12) here.
    tol = {"exact": 1e-10, "cg": 1e-9, "lissa": 1e-8}[strategy]
    assert rel_fro(got, expected) < tol


@pytest.mark.parametrize("strategy", ["exact", "cg", "lissa", "ekfac", "arnoldi"])
def test_float32_v_on_float64_fit(key, x64, strategy):
    """ihvp promises a result in v's dtype for any float v; CG and LiSSA passed a
    float32 v to jax.jvp on float64 parameters, which raised. Every strategy now
    solves in float64 and casts back (float32 round-off: 1e-6 relative)."""
    params, x, y = mlp_problem(key)
    cfg = _cfg(strategy=strategy, damping=0.5, cg_tol=1e-10, lissa_iters=400)
    model = MLP if strategy == "ekfac" else apply_fn  # s_b b: no plain bias add
    state = influence.fit_curvature(model, params, x, y, cfg=cfg)
    v = ntk.init_mlp(jax.random.fold_in(key, 1), MLP)
    v32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), v)
    got = influence.ihvp(state, v32)
    assert {a.dtype for a in jax.tree_util.tree_leaves(got)} == {jnp.dtype("float32")}
    ref = ravel_pytree(influence.ihvp(state, v))[0]
    assert rel_fro(ravel_pytree(got)[0].astype(jnp.float64), ref) < 1e-6


def test_exact_hessian_matches_jax_hessian(key, x64):
    params, x, y = mlp_problem(key)
    state = influence.fit_curvature(
        apply_fn,
        params,
        x,
        y,
        cfg=_cfg(strategy="exact", curvature="hessian", damping=2.0),
    )
    flat, unravel = ravel_pytree(params)
    lf = influence.example_loss_fn(apply_fn, "cross_entropy")
    h = jax.hessian(
        lambda t: jnp.mean(influence.per_example_losses(lf, unravel(t), x, y))
    )(flat)
    v = ntk.init_mlp(jax.random.fold_in(key, 1), MLP)
    expected = jnp.linalg.solve(h + 2.0 * jnp.eye(h.shape[0]), ravel_pytree(v)[0])
    assert rel_fro(ravel_pytree(influence.ihvp(state, v))[0], expected) < 1e-10


def test_arnoldi_recovers_top_eigenpairs(key, x64):
    params, x, y = mlp_problem(key)
    cfg = _cfg(strategy="arnoldi", damping=0.1, arnoldi_iters=25, arnoldi_rank=3)
    state = influence.fit_curvature(apply_fn, params, x, y, cfg=cfg)
    evals, evecs = jnp.linalg.eigh(dense_ggn(params, x))
    top = evals[::-1][:3]
    np.testing.assert_allclose(state.factors.evals, top, rtol=1e-8)
    overlap = jnp.abs(jnp.sum(state.factors.q * evecs[:, ::-1][:, :3], axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-6)


def test_arnoldi_with_more_iterations_than_parameters(key, x64):
    """The MLP has p = 31 parameters and a GGN of rank 16 (8 examples, softmax of
    3 classes): 40 requested steps run as 31, so the 20 kept Ritz values are the
    top eigenvalues (zeros included) to round-off and the vectors orthonormal."""
    params, x, y = mlp_problem(key)
    cfg = _cfg(strategy="arnoldi", damping=0.1, arnoldi_iters=40, arnoldi_rank=20)
    state = influence.fit_curvature(apply_fn, params, x, y, cfg=cfg)
    top = jnp.linalg.eigvalsh(dense_ggn(params, x))[::-1][:20]
    np.testing.assert_allclose(state.factors.evals, top, atol=1e-12)
    q = state.factors.q
    np.testing.assert_allclose(q.T @ q, jnp.eye(20), atol=1e-10)
    with pytest.raises(ValueError, match="^arnoldi_rank: .* 31 parameters"):
        influence.fit_curvature(
            apply_fn,
            params,
            x,
            y,
            cfg=_cfg(strategy="arnoldi", arnoldi_iters=40, arnoldi_rank=32),
        )


@pytest.mark.parametrize("n", [2, 3])
def test_arnoldi_when_the_krylov_space_closes_early(key, x64, n):
    """n examples, 3 classes: a GGN of rank 2n (4 or 6) closes the Krylov space
    long before 20 steps. Normalising the round-off left after that into the basis
    broke its orthonormality (|Q^T Q - I| 0.8) and gave Ritz values above the
    largest eigenvalue (4.28 vs 0.68)."""
    params, x, y = mlp_problem(key, n=n)
    cfg = _cfg(strategy="arnoldi", damping=0.1, arnoldi_iters=20, arnoldi_rank=3)
    state = influence.fit_curvature(apply_fn, params, x, y, cfg=cfg)
    evals, evecs = jnp.linalg.eigh(dense_ggn(params, x))
    np.testing.assert_allclose(state.factors.evals, evals[::-1][:3], rtol=1e-8)
    q = state.factors.q
    np.testing.assert_allclose(q.T @ q, jnp.eye(3), atol=1e-10)
    overlap = jnp.abs(jnp.sum(q * evecs[:, ::-1][:, :3], axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-6)


def test_arnoldi_keeps_hessian_eigenpairs_by_magnitude(key, x64):
    """An indefinite Hessian's large negative eigenvalues dominate the damped
    inverse as much as its large positive ones; they were dropped (kept by signed
    value)."""
    params, x, y = mlp_problem(key, n=6)
    p = ravel_pytree(params)[0].shape[0]
    cfg = _cfg(
        strategy="arnoldi",
        curvature="hessian",
        damping=2.0,
        arnoldi_iters=p,  # the whole space: Ritz values are the eigenvalues
        arnoldi_rank=6,
    )
    state = influence.fit_curvature(apply_fn, params, x, y, cfg=cfg)
    flat, unravel = ravel_pytree(params)
    loss = influence.example_loss_fn(apply_fn, "cross_entropy")
    h = jax.hessian(lambda t: jnp.mean(jax.vmap(loss, (None, 0, 0))(unravel(t), x, y)))(
        flat
    )
    evals = jnp.linalg.eigvalsh(h)
    by_size = evals[jnp.argsort(-jnp.abs(evals))][:6]
    assert float(jnp.min(by_size)) < 0  # the test needs a large negative one
    np.testing.assert_allclose(state.factors.evals, by_size, atol=1e-10)


def test_sampled_fisher_approaches_exact(key, x64):
    params, x, y = mlp_problem(key)
    exact = influence.fit_curvature(
        MLP, params, x, y, cfg=_cfg(strategy="kfac", damping=DAMP)
    )
    sampled = influence.fit_curvature(
        MLP,
        params,
        x,
        y,
        cfg=_cfg(strategy="kfac", damping=DAMP, fisher="sampled", n_samples=4000),
        key=jax.random.fold_in(key, 2),
    )
    # Monte Carlo: rel. error ~ c / sqrt(n * n_samples); c <= 3 stated.
    err = rel_fro(sampled.factors[1].s, exact.factors[1].s)
    assert err < 3 / np.sqrt(8 * 4000)
    emp = influence.fit_curvature(
        MLP, params, x, y, cfg=_cfg(strategy="kfac", damping=DAMP, fisher="empirical")
    )
    ds = influence.dense_grad_factors(params, x, y, mlp=MLP)[1][1]
    assert_close(emp.factors[1].s, ds.T @ ds / 8, kind="factorization")


@pytest.mark.parametrize("fisher", ["exact", "sampled"])
def test_streamed_kronecker_fit_equals_one_pass(key, fisher):
    """Chunks of 4 (the last one padded) give the one-pass factors: float32 sums in
    a different order, so rtol 1e-5; sampled labels follow the example index."""
    params, x, y = mlp_problem(key, n=11)
    cfg = influence.IHVPConfig(strategy="ekfac", fisher=fisher)
    k = jax.random.key(3) if fisher == "sampled" else None
    one = influence.fit_curvature(MLP, params, x, y, cfg=cfg, key=k)
    chunked = influence.fit_curvature(MLP, params, x, y, cfg=cfg, key=k, chunk_size=4)
    for a, b in zip(one.factors, chunked.factors, strict=True):
        for name in ("a", "s", "lam"):
            np.testing.assert_allclose(
                getattr(b, name), getattr(a, name), rtol=1e-5, atol=1e-7
            )
    np.testing.assert_allclose(chunked.damping, one.damping, rtol=1e-5)


def test_streamed_fit_only_for_kronecker(key):
    params, x, y = mlp_problem(key)
    with pytest.raises(ValueError, match="chunk_size"):
        influence.fit_curvature(
            MLP, params, x, y, cfg=influence.IHVPConfig(strategy="exact"), chunk_size=4
        )
    with pytest.raises(ValueError, match="chunk_size"):
        influence.fit_curvature(
            MLP, params, x, y, cfg=influence.IHVPConfig(strategy="ekfac"), chunk_size=0
        )


def test_indefinite_damped_hessian_is_solved_and_singular_one_refused(x64):
    # L = (a b x - y)^2 / 2 at a = b = 0, x = y = 1 has Hessian [[0, -1], [-1, 0]]
    # (eigenvalues -1, 1): damping 0.5 leaves an invertible indefinite matrix,
    # solved exactly; damping 1 makes it singular, which must name `damping`.
    f = lambda p, x: p["a"] * p["b"] * x
    params = {"a": jnp.zeros(()), "b": jnp.zeros(())}
    x, y = jnp.ones((1, 1)), jnp.ones((1, 1))
    cfg = lambda d: _cfg(strategy="exact", curvature="hessian", loss="mse", damping=d)
    state = influence.fit_curvature(f, params, x, y, cfg=cfg(0.5))
    out = influence.ihvp(state, {"a": jnp.array(1.0), "b": jnp.array(0.0)})
    want = jnp.linalg.solve(jnp.array([[0.5, -1.0], [-1.0, 0.5]]), jnp.array([1.0, 0]))
    assert_close(jnp.stack([out["a"], out["b"]]), want, kind="identity")
    with pytest.raises(ValueError, match="^damping: "):
        influence.fit_curvature(f, params, x, y, cfg=cfg(1.0))


def test_damping_none_of_an_indefinite_hessian_is_positive(x64):
    """L = (a b x + c^2 - y)^2 / 2 at 0 with x = y = 1 has Hessian
    [[0, -1, 0], [-1, 0, 0], [0, 0, -2]] (eigenvalues -2, -1, 1; mean -2/3): the
    heuristic uses the mean |eigenvalue|, 4/3, so lambda = 2/15 (not -1/15)."""
    f = lambda p, x: p["a"] * p["b"] * x + p["c"] ** 2
    params = {k: jnp.zeros(()) for k in "abc"}
    cfg = _cfg(strategy="exact", curvature="hessian", loss="mse")
    state = influence.fit_curvature(
        f, params, jnp.ones((1, 1)), jnp.ones((1, 1)), cfg=cfg
    )
    np.testing.assert_allclose(state.damping, 2 / 15, rtol=1e-12)
    h = jnp.array([[0.0, -1, 0], [-1, 0, 0], [0, 0, -2]])
    out = influence.ihvp(state, {k: jnp.array(1.0) for k in "abc"})
    want = jnp.linalg.solve(h + 2 / 15 * jnp.eye(3), jnp.ones(3))
    assert_close(jnp.stack([out[k] for k in "abc"]), want, kind="identity")
