"""Critical times and fixed points against ODE integration, SciPy and calculus."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from jaxfeat import linear_ssl as ls
from jaxfeat._src.testing import assert_close

# Grid of the acceptance criterion: (lambda, rho, L in 1..6, eps), with eps well
# below the threshold p * wbar_inf (the spec's validity guard eps <= 0.1 p rho^L).
GRID = [
    (lam, rho, L, eps)
    for lam, rho, L, eps in itertools.product(
        (0.7, 1.3), (0.5, 0.8, 1.0), range(1, 7), (1e-2, 1e-3)
    )
    if eps <= 0.1 * 0.5 * rho**L
]


def _scipy_ode_time(lam, rho, L, eps, objective, p=0.5):
    """Adaptive DOP853 integration of the end-to-end ODE (gradient-flow time)."""
    w_inf = rho**L if objective == "jepa" else rho ** (L / (L + 1))

    def rhs(_, y):  # y = log(wbar): keeps relative precision while wbar is tiny
        w = np.exp(y[0])
        g = w ** (1 / L)
        if objective == "jepa":
            dw = L * lam * w ** (3 - 1 / L) * (1 - g / rho)
        else:
            dw = L * lam * w ** (2 - 1 / L) * (1 - w * g / rho)
        return [dw / w]

    event = lambda _, y: y[0] - np.log(p * w_inf)
    event.terminal, event.direction = True, 1
    t_guess = float(ls.critical_time(lam, rho, eps, L, objective=objective))
    sol = solve_ivp(
        rhs,
        (0, 3 * t_guess),
        [np.log(eps)],
        method="DOP853",
        rtol=1e-11,
        atol=1e-11,
        events=event,
    )
    return sol.t_events[0][0]


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_closed_form_matches_scipy_ode_on_grid(x64, objective):
    # Acceptance: closed form vs integrating the ODE, <= 1e-6 relative in float64.
    # A sub-grid (every depth, both rho extremes, eps=1e-3): SciPy costs ~0.3 s per
    # point; the RK4 test below covers the whole grid.
    worst = 0.0
    sub = [g for g in GRID if g[0] == 1.3 and g[1] != 0.8 and g[3] == 1e-3]
    for lam, rho, L, eps in sub:
        cf = float(ls.critical_time(lam, rho, eps, L, objective=objective))
        ode = _scipy_ode_time(lam, rho, L, eps, objective)
        worst = max(worst, abs(cf / ode - 1))
    assert worst <= 1e-6, worst


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_closed_form_matches_rk4_ode_vmapped_over_grid(x64, objective):
    # jaxfeat's own RK4 (20k steps, Hermite crossing), vmapped over the whole grid
    # with a traced depth: measured max relative error 6e-8 at this step count.
    lam, rho, L, eps = (jnp.array(c) for c in zip(*GRID, strict=True))
    tc = ls.critical_time(lam, rho, eps, L, objective=objective, max_depth=6)
    w_inf = ls.fixed_point(rho, L, objective=objective).wbar

    def one(lam, rho, L, eps, t_max, thr):
        t, w, dw = ls.integrate_mode(
            lam, rho, eps, L, objective=objective, t_max=t_max, n_steps=20_000
        )
        return ls.first_crossing_time(t, w, thr, dw)

    ode = jax.jit(jax.vmap(one))(lam, rho, L, eps, 1.3 * tc, 0.5 * w_inf)
    np.testing.assert_allclose(ode, tc, rtol=1e-6)


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_quadrature_matches_closed_form(x64, objective):
    lam, rho, L, eps = (jnp.array(c) for c in zip(*GRID, strict=True))
    p = jnp.full(lam.shape, 0.9)  # near the asymptote, where a naive rule struggles
    kw = dict(objective=objective, p=p, max_depth=6)
    cf = ls.critical_time(lam, rho, eps, L, **kw)
    qd = ls.critical_time(lam, rho, eps, L, method="quadrature", **kw)
    # Gauss-Legendre on a smooth integrand: measured error < 1e-13 with 96 nodes.
    np.testing.assert_allclose(qd, cf, rtol=1e-10)


def test_mae_closed_form_matches_scipy_quad(x64):
    for L, rho in itertools.product(range(1, 7), (0.3, 1.0, 2.0)):
        a, u = 1e-3 ** (1 / L), 0.7 ** (1 / L) * rho ** (1 / (L + 1))
        expected = (
            quad(
                lambda s, L=L, rho=rho: 1 / (s**L * (1 - s ** (L + 1) / rho)),
                a,
                u,
                epsabs=0,
                epsrel=1e-13,
                limit=200,
            )[0]
            / 1.7
        )
        got = ls.critical_time(1.7, rho, 1e-3, L, objective="mae", p=0.7)
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_spec_table_values(x64):
    # Spec table 4.2 (lambda=1.3, rho=0.7, eps=1e-3), quoted to 7 significant digits.
    jepa = {1: 774.2304, 2: 8708.788, 3: 18795.45, 5: 36329.62}
    mae = {1: 4.75393, 2: 23.35588, 3: 38.06711, 5: 48.27074}
    for L in jepa:
        t_j = ls.critical_time(1.3, 0.7, 1e-3, L, objective="jepa")
        t_m = ls.critical_time(1.3, 0.7, 1e-3, L, objective="mae")
        np.testing.assert_allclose(t_j, jepa[L], rtol=1e-6)
        np.testing.assert_allclose(t_m, mae[L], rtol=1e-6)


def test_time_conventions(x64):
    gf = ls.critical_time(1.0, 0.5, 1e-3, 4, objective="jepa")
    paper = ls.critical_time(1.0, 0.5, 1e-3, 4, objective="jepa", convention="paper")
    assert_close(paper, 4 * gf)
    lg = ls.critical_time_laurent(1.0, 0.5, 1e-3, 4)
    lp = ls.critical_time_laurent(1.0, 0.5, 1e-3, 4, convention="paper")
    assert_close(lp, 4 * lg)


def test_laurent_leading_term_and_convergence(x64):
    # Laurent sum vs exact: relative gap shrinks as eps -> 0 (spec: < 1e-7 at 1e-6
    # for L >= 2); the n = 2L-1 term, L/((2L-1) lam eps^{(2L-1)/L}) in paper time,
    # does not depend on rho.
    for L in range(2, 6):
        exact = ls.critical_time(1.0, 0.5, 1e-6, L, objective="jepa")
        laurent = ls.critical_time_laurent(1.0, 0.5, 1e-6, L)
        assert abs(laurent / exact - 1) < 1e-7
    gaps = [
        abs(
            ls.critical_time_laurent(1.0, 0.5, e, 3)
            / ls.critical_time(1.0, 0.5, e, 3, objective="jepa")
            - 1
        )
        for e in (1e-2, 1e-3, 1e-4)
    ]
    assert gaps[0] > gaps[1] > gaps[2]


def test_gradient_wrt_lambda_is_minus_t_over_lambda(x64):
    # t* is exactly proportional to 1/lambda, so dt*/dlambda = -t*/lambda: the closed
    # form is a differentiable building block.
    for objective in ("jepa", "mae"):
        f = lambda lam, o=objective: ls.critical_time(lam, 0.6, 1e-3, 3, objective=o)
        t, g = jax.jit(jax.value_and_grad(f))(1.7)
        assert_close(g, -t / 1.7, kind="factorization")
        # d t*/d rho against central differences (h = 1e-6: truncation ~1e-12).
        f_rho = jax.jit(
            lambda r, o=objective: ls.critical_time(1.0, r, 1e-3, 3, objective=o)
        )
        fd = (f_rho(0.6 + 1e-6) - f_rho(0.6 - 1e-6)) / 2e-6
        np.testing.assert_allclose(jax.grad(f_rho)(0.6), fd, rtol=1e-6)


def test_depth_vmapped_with_max_depth_equals_loop(x64):
    depths = jnp.arange(1, 7)
    batched = jax.vmap(
        lambda L: ls.critical_time(1.0, 0.9, 1e-3, L, objective="mae", max_depth=6)
    )(depths)
    looped = jnp.stack(
        [ls.critical_time(1.0, 0.9, 1e-3, L, objective="mae") for L in range(1, 7)]
    )
    assert_close(batched, looped)


def test_fixed_points(x64):
    fp = ls.fixed_point(0.8, jnp.arange(1, 4), objective="jepa")
    assert_close(fp.wbar, jnp.array([0.8, 0.64, 0.512]))
    fm = ls.fixed_point(0.8, jnp.arange(1, 4), objective="mae")
    # spec table 4.1
    np.testing.assert_allclose(fm.wbar, [0.89443, 0.86177, 0.84590], atol=1e-5)
    assert_close(fm.v * fm.wbar, jnp.full(3, 0.8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lam=0.0), "lam"),
        (dict(lam=-1.0), "lam"),
        (dict(rho=0.0), "rho"),
        (dict(rho=float("nan")), "rho"),
        (
            dict(eps=0.5),
            "eps",
        ),  # eps >= p rho^L = 0.32: past the threshold from the start
        (dict(eps=-1e-3), "eps"),
        (dict(depth=0), "depth"),
        (dict(p=1.0), "p"),
        (dict(objective="byol"), "objective"),
        (dict(method="euler"), "method"),
        (dict(convention="wall"), "convention"),
    ],
)
def test_bad_input_raises_naming_argument(kwargs, match):
    args = dict(lam=1.0, rho=0.8, eps=1e-3, depth=2, objective="jepa")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ls.critical_time(
            args.pop("lam"), args.pop("rho"), args.pop("eps"), args.pop("depth"), **args
        )


def test_traced_depth_without_max_depth_is_a_clear_error():
    with pytest.raises(TypeError, match="max_depth"):
        jax.vmap(lambda L: ls.critical_time(1.0, 0.8, 1e-3, L, objective="jepa"))(
            jnp.arange(1, 3)
        )


def test_eps_broadcasts_against_the_other_arguments(x64):
    """An eps grid wider than rho/depth/p (the docstring: every argument
    broadcasts) raised a NumPy broadcast error; it must equal one call per eps."""
    eps = jnp.array([[1e-3], [1e-4]])  # (2, 1) against p (3,)
    p = jnp.array([0.3, 0.5, 0.7])
    for objective in ("jepa", "mae"):
        got = ls.critical_time(1.0, 0.5, eps, 2, p=p, objective=objective)
        assert got.shape == (2, 3)
        for i, j in itertools.product(range(2), range(3)):
            one = ls.critical_time(1.0, 0.5, eps[i, 0], 2, p=p[j], objective=objective)
            np.testing.assert_allclose(got[i, j], one, rtol=1e-12)
    with pytest.raises(ValueError, match="^eps: the mode starts"):
        ls.critical_time(1.0, 0.5, jnp.array([1e-3, 0.9]), 2, objective="jepa")


def test_depth_above_max_depth_raises_in_both_forms():
    # A sum truncated at max_depth would silently give a smaller time (8104 vs 64540).
    with pytest.raises(ValueError, match="^depth"):
        ls.critical_time_laurent(1.0, 0.9, 1e-3, 10, max_depth=2)
    with pytest.raises(ValueError, match="^depth"):
        ls.critical_time(1.0, 0.9, 1e-3, 10, objective="jepa", max_depth=2)


def test_shapes_that_do_not_broadcast_raise_naming_the_arguments(no_runtime_types):
    """lam (3,) with eps (2,) failed inside the trace with 'Incompatible shapes for
    broadcasting: shapes=[(3,), (), (2,), (), ()]', naming no argument."""
    lam, eps = jnp.array([1.0, 1.1, 1.2]), jnp.array([1e-3, 1e-4])
    with pytest.raises(ValueError, match=r"^lam, rho, eps, depth, p: expected shapes"):
        ls.critical_time(lam, 0.8, eps, 2, objective="jepa")
    with pytest.raises(ValueError, match=r"^lam, rho, eps, depth: expected shapes"):
        ls.critical_time_laurent(lam, 0.8, eps, 2)
    with pytest.raises(ValueError, match=r"^lam, rho: expected shapes"):
        ls.learning_curve(lam, jnp.array([0.5, 0.6]), 1e-3, 2, objective="mae")
    with pytest.raises(ValueError, match=r"^eps: expected shape \(\)"):
        ls.learning_curve(lam, 0.8, jnp.full(3, 1e-3), 2, objective="mae")
