"""One test per theory claim of theory/linear_ssl.md (float64, small sizes)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from jaxfeat import linear_ssl as ls
from jaxfeat._src.testing import assert_close

pytestmark = pytest.mark.usefixtures("x64")


def _two_modes(lam=(1.0, 1.25), rho=(1.0, 0.5)):
    spec = ls.mode_spec(jnp.array(lam), jnp.array(rho))
    return spec, ls.population_covariances(spec)


def test_lssl_1():
    # Aligned GD stays diagonal and its diagonal follows the per-mode scalar flow.
    spec, cov = _two_modes()
    L, eps, lr, n = 3, 0.05, 0.05, 400
    state = ls.init_gd(ls.init_aligned(eps, d=2, depth=L))
    _, log = ls.simulate_gd(state, cov, lr, cfg=ls.GDConfig(n_steps=n, log_every=n))
    Wb = log.encoder[-1]
    assert float(jnp.abs(Wb[0, 1]) + jnp.abs(Wb[1, 0])) == 0.0
    u = jnp.full(2, eps ** (1 / L))  # scalar Euler on du/dt = lam u^{2L}(1 - u/rho)
    for _ in range(n):
        u = u + lr * spec.lam * u ** (2 * L) * (1 - u / spec.rho)
    assert_close(jnp.diag(Wb), u**L)


def test_lssl_2():
    # Gradient flow (RK4 on the full parameter flow, tiny step) conserves balance
    # from a random balanced init; the residual is RK4 error, not O(eta).
    spec, cov = _two_modes()
    p0 = ls.init_orthogonal(jax.random.key(0), 0.3, d=2, depth=3)
    for objective in ("jepa", "mae"):
        g = jax.grad(lambda p, o=objective: ls.population_loss(p, cov, objective=o))
        rhs = lambda p, g=g: jax.tree_util.tree_map(lambda x: -x, g(p))
        _, ps = ls.integrate_rk4(rhs, p0, dt=0.01, n_steps=2000, log_every=2000)
        final = jax.tree_util.tree_map(lambda x: x[-1], ps)
        assert float(ls.imbalance(final)) < 1e-10


def test_lssl_3():
    for L in range(1, 5):
        for objective, wbar in (("jepa", 0.7**L), ("mae", 0.7 ** (L / (L + 1)))):
            fp = ls.fixed_point(0.7, L, objective=objective)
            assert_close(fp.wbar, jnp.asarray(wbar))
            # stationary and stable: the scalar flow vanishes and has negative slope
            f = lambda u, o=objective, L=L: ls.mode_rhs(u, u, 1.0, 0.7, L, objective=o)[
                0
            ]
            assert abs(float(f(fp.u))) < 1e-14
            assert float(jax.grad(f)(fp.u)) < 0


def test_lssl_4():
    for L, rho in itertools.product(range(1, 7), (0.5, 1.0)):
        a, up = 1e-3 ** (1 / L), 0.5 ** (1 / L) * rho
        integral = quad(
            lambda s, L=L, rho=rho: 1 / (s ** (2 * L) * (1 - s / rho)),
            a,
            up,
            epsabs=0,
            epsrel=1e-13,
            limit=500,
        )[0]
        got = ls.critical_time(1.0, rho, 1e-3, L, objective="jepa")
        np.testing.assert_allclose(got, integral, rtol=1e-9)


def test_lssl_5():
    for L in range(2, 9):  # at a common a = eps^(1/L) = 1e-3 the gap is tiny
        a = float(
            ls.critical_time_laurent(1.0, 0.5, 1e-3**L, L)
            / ls.critical_time(1.0, 0.5, 1e-3**L, L, objective="jepa")
        )
        assert abs(a - 1) < 1e-7, (L, a)
    for L in range(2, 6):
        gaps = [
            abs(
                float(
                    ls.critical_time_laurent(1.0, 0.5, e, L)
                    / ls.critical_time(1.0, 0.5, e, L, objective="jepa")
                )
                - 1
            )
            for e in (1e-4, 1e-6)
        ]
        assert gaps[1] < gaps[0]  # the Laurent form's gap shrinks as eps -> 0
        assert gaps[1] < 1e-7
    # The most divergent term is rho-free: as eps -> 0 the ratio of Laurent sums
    # at two rho tends to 1 (slowly, through the rho-carrying terms).
    r = [
        float(
            ls.critical_time_laurent(1.0, 0.5, e, 3)
            / ls.critical_time_laurent(1.0, 1.0, e, 3)
        )
        for e in (1e-3, 1e-6, 1e-9)
    ]
    assert r[0] > r[1] > r[2] > 1 and r[2] < 1.01


def test_lssl_6():
    for L, rho in itertools.product(range(1, 7), (0.5, 1.0, 2.0)):
        kw = dict(objective="mae", p=0.8)
        cf = ls.critical_time(1.0, rho, 1e-3, L, **kw)
        qd = ls.critical_time(1.0, rho, 1e-3, L, method="quadrature", **kw)
        np.testing.assert_allclose(qd, cf, rtol=1e-10)
        # independent: SciPy quad of du / (u^L (1 - u^{L+1}/rho)), a = eps^{1/L}
        a, up = 1e-3 ** (1 / L), 0.8 ** (1 / L) * rho ** (1 / (L + 1))
        ref = quad(
            lambda s, L=L, rho=rho: 1 / (s**L * (1 - s ** (L + 1) / rho)),
            a,
            up,
            epsabs=0,
            epsrel=1e-13,
            limit=500,
        )[0]
        np.testing.assert_allclose(cf, ref, rtol=1e-10)
    # leading order for L >= 2: 1/((L-1) lam eps^{(L-1)/L}), rho-free
    for L in (2, 3):
        t = ls.critical_time(1.0, 0.8, 1e-9, L, objective="mae")
        lead = 1 / ((L - 1) * 1e-9 ** ((L - 1) / L))
        assert abs(float(t / lead) - 1) < 0.01


def test_lssl_7():
    L = jnp.arange(1, 7)
    jepa = ls.critical_time(1.0, 0.5, 1e-3, L, objective="jepa") / ls.critical_time(
        1.0, 1.0, 1e-3, L, objective="jepa"
    )
    mae = ls.critical_time(1.0, 0.5, 1e-3, L, objective="mae") / ls.critical_time(
        1.0, 1.0, 1e-3, L, objective="mae"
    )
    assert bool(jnp.all(jepa > 1) and jnp.all(jnp.diff(jepa) > 0))
    assert bool(jnp.all(jnp.abs(mae - 1) < 0.06))
    # spec table 4.3, equal-lambda column
    np.testing.assert_allclose(
        jepa, [1.0035, 1.0538, 1.1730, 1.3691, 1.6714, 2.1309], atol=1e-4
    )
    # the noisy feature B (lam 1.25, rho 0.5 against A: 1, 1) is learned last from
    # depth 3, 4, 5 at eps = 1e-2, 1e-3, 1e-4 (spec table 4.3)
    for eps, flip in ((1e-2, 3), (1e-3, 4), (1e-4, 5)):
        depths = jnp.arange(1, 6)
        ratio = ls.critical_time(
            1.25, 0.5, eps, depths, objective="jepa"
        ) / ls.critical_time(1.0, 1.0, eps, depths, objective="jepa")
        assert int(jnp.argmax(ratio > 1)) + 1 == flip
        assert bool(jnp.all(ratio[flip - 1 :] > 1))


def test_lssl_8():
    lam = jnp.array([1.0, 2.0, 3.0, 4.0])
    for objective, L in itertools.product(("jepa", "mae"), range(1, 6)):
        t = ls.critical_time(lam, 1.0, 1e-3, L, objective=objective)
        assert bool(jnp.all(jnp.diff(t) < 0))


def test_lssl_9():
    rho = jnp.array([0.25, 0.5, 0.75, 1.0])
    for L in range(1, 5):  # at L = 5 eps = 1e-3 is past 0.5 * 0.25^5 (no crossing)
        tj = ls.critical_time(1.0, rho, 1e-3, L, objective="jepa")
        assert bool(jnp.all(jnp.diff(tj) < 0))  # JEPA: higher rho first
    for L in range(1, 6):  # MAE's inverse trend stops being monotone at L = 6
        tm = ls.critical_time(1.0, rho, 1e-3, L, objective="mae")
        assert bool(jnp.all(jnp.diff(tm) >= 0))  # MAE: weak inverse trend


def test_lssl_10():
    lam, rho = jnp.array([1.0, 1.1, 1.2, 1.3]), jnp.array([1.0, 0.8, 0.6, 0.4])
    for L in range(1, 6):
        tm = ls.critical_time(lam, rho, 1e-3, L, objective="mae")
        assert list(np.argsort(tm)) == [3, 2, 1, 0]
    tj = ls.critical_time(lam, rho, 1e-3, 5, objective="jepa")
    assert list(np.argsort(tj)) == [0, 1, 2, 3]
    # rho order from L = 5 at eps = 1e-3 (not at 4) and from L = 3 at 1e-2
    for eps, deep in ((1e-3, 5), (1e-2, 3)):
        shallower = ls.critical_time(lam, rho, eps, deep - 1, objective="jepa")
        at = ls.critical_time(lam, rho, eps, deep, objective="jepa")
        assert list(np.argsort(shallower)) != [0, 1, 2, 3]
        assert list(np.argsort(at)) == [0, 1, 2, 3]
    np.testing.assert_allclose(tj, [39019, 39463, 44580, 68906], rtol=2e-5)


def test_lssl_11():
    for objective in ("jepa", "mae"):
        t = ls.critical_time(
            jnp.array([0.3, 1.0, 7.0]), 0.8, 1e-3, 3, objective=objective
        )
        assert_close(t * jnp.array([0.3, 1.0, 7.0]), jnp.full(3, t[1]))
    # collapse: t lam rho^{2L-1} is a function of eps^{1/L}/rho only
    L, ratio = 3, 0.2
    vals = []
    for rho in (0.5, 0.8, 1.3):
        eps = (ratio * rho) ** L
        vals.append(
            ls.critical_time(1.7, rho, eps, L, objective="jepa")
            * 1.7
            * rho ** (2 * L - 1)
        )
    assert_close(jnp.stack(vals), jnp.full(3, vals[0]))


def test_lssl_12(key):
    gamma, noise = jnp.array([1.0, 2.0]), jnp.array([0.5, 3.0])
    spec = ls.static_two_view(gamma, noise)
    x, y = ls.sample_static_two_view(key, gamma, noise, 400_000)
    emp = ls.empirical_covariances(x, y)
    # Monte Carlo with n = 400k (sqrt(n) = 632): Gaussian views give Var(xy) =
    # s_x^2 s_y^2 + gamma^2, a relative sd of sqrt(1 + 1/rho^2) / sqrt(n) for lambda
    # (2.69 / 632 at rho = 0.4) and, by the delta method, sqrt(1/rho^2 - 1) / sqrt(n)
    # for rho (2.29 / 632): the bound 8.8 / 632 is 3.3 and 3.8 standard deviations.
    np.testing.assert_allclose(jnp.diag(emp.yx), spec.lam, rtol=4 * 2.2 / 632)
    np.testing.assert_allclose(
        jnp.diag(emp.yx) / jnp.diag(emp.xx), spec.rho, rtol=4 * 2.2 / 632
    )
    dyn = ls.dynamic_ar1(jnp.array([0.5]), jnp.array([2.0]), jnp.array([1.0]))
    assert_close(dyn.lam, jnp.array([1.0]))
    assert_close(dyn.rho, jnp.array([1.0 / 3.0]))


def test_lssl_13():
    spec, cov = _two_modes()
    p = ls.init_orthogonal(jax.random.key(1), 0.5, d=2, depth=2)
    g = jax.grad(ls.jepa_population_loss)(p, cov)
    Wb = ls.encoder_matrix(p)
    G = p.V @ Wb @ cov.xx - Wb @ cov.yx
    assert_close(g.V, G @ Wb.T)
    gWb = p.V.T @ G
    assert_close(g.W[0], p.W[1].T @ gWb)
    assert_close(g.W[1], gWb @ p.W[0].T)

    # Not a gradient field: the Jacobian of the vector field (the target moving with
    # the parameters) is not symmetric. stop_gradient also blocks forward-mode
    # derivatives, so the Jacobian is taken by central differences (h = 1e-6).
    def field(theta):
        q = ls.Params(W=theta[:8].reshape(2, 2, 2), V=theta[8:].reshape(2, 2))
        gq = jax.grad(ls.jepa_population_loss)(q, cov)
        return jnp.concatenate([gq.W.reshape(-1), gq.V.reshape(-1)])

    theta = jnp.concatenate([p.W.reshape(-1), p.V.reshape(-1)])
    eye = jnp.eye(theta.shape[0])
    J = jnp.stack(
        [(field(theta + 1e-6 * e) - field(theta - 1e-6 * e)) / 2e-6 for e in eye],
        axis=1,
    )
    assert float(jnp.max(jnp.abs(J - J.T))) > 1e-3


def test_lssl_14():
    spec, cov = _two_modes()
    L, eps, lr = 2, 1e-2, 0.05
    cf = ls.critical_time(spec.lam, spec.rho, eps, L, objective="jepa")
    n = int(1.2 * float(cf.max()) / lr)
    state = ls.init_gd(ls.init_aligned(eps, d=2, depth=L))
    _, log = ls.simulate_gd(state, cov, lr, cfg=ls.GDConfig(n_steps=n, log_every=1))
    w_inf = spec.rho**L
    t_gd = jnp.stack(
        [
            ls.first_crossing_time(log.t, log.encoder[:, i, i], 0.5 * w_inf[i])
            for i in range(2)
        ]
    )
    pred = ls.critical_time(spec.lam, spec.rho, eps, L, objective="jepa", lr=lr)
    assert float(jnp.max(jnp.abs(t_gd - pred))) <= 0.5 * lr**2


def test_lssl_15():
    # MAE from a product with negative determinant cannot reach the positive target:
    # the end-to-end determinant keeps its sign along GD (2x2, depth 2, small steps).
    spec, cov = _two_modes()
    flip = jnp.diag(jnp.array([1.0, -1.0]))
    p = ls.init_aligned(1e-2, d=2, depth=2)
    p = ls.Params(W=p.W, V=flip @ p.V)  # V^T V unchanged: still balanced
    head_map = lambda q: q.V @ ls.encoder_matrix(q)
    assert float(jnp.linalg.det(head_map(p))) < 0
    final, log = ls.simulate_gd(
        ls.init_gd(p), cov, 0.05, cfg=ls.GDConfig(objective="mae", n_steps=4000)
    )
    dets = jnp.linalg.det(jnp.einsum("tij,tjk->tik", log.head, log.encoder))
    assert bool(jnp.all(dets < 0))
    sv = jnp.linalg.svd(log.encoder[-1], compute_uv=False)
    assert float(sv[-1]) < 1e-2  # one mode stays (near) unlearned


def test_lssl_15_perturbed_init_is_unaligned(key):
    """The experiment's 'aligned + noise' init multiplied the diagonal W by noise,
    so every off-diagonal entry of W stayed exactly 0: not the unaligned init
    its claim is about."""
    from experiments.linear_ssl import random_orthogonal_init as r

    cfg = r.SCALES["smoke"]
    params = r._inits(cfg, key, "perturbed", cfg.depth)
    off = jnp.stack([params.W[..., 0, 1], params.W[..., 1, 0]])  # (2, seeds, L)
    scale = 1e-2 ** (1 / cfg.depth)
    rel = float(jnp.sqrt(jnp.mean(off**2))) / scale
    assert bool(jnp.all(off != 0))
    assert 0.5 * cfg.perturbation < rel < 2 * cfg.perturbation


def test_lssl_16():
    spec, cov = _two_modes((1.0, 1.25, 0.3), (1.0, 0.5, 0.9))
    lam, rho, _ = ls.generalized_modes(cov)
    order = jnp.argsort(-spec.rho)
    assert_close(rho, spec.rho[order])
    assert_close(lam, spec.lam[order])


def test_lssl_17():
    from experiments.linear_ssl import digits_pca as d

    cfg = d.SCALES["smoke"]
    X, P, gamma = d._digits_pca(cfg.n_components)
    for kind in ("masked", "nuisance"):
        cov = d.view_covariances(X, P, gamma, cfg, kind)
        x, y = d.sample_views(jax.random.key(0), X, P, gamma, cfg, kind)
        emp = ls.empirical_covariances(x, y)
        n = x.shape[0]
        for a, b in zip(emp[:2], cov[:2], strict=True):
            err = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))
            assert err < 10 / np.sqrt(n), (kind, err)  # Monte Carlo, c = 10
