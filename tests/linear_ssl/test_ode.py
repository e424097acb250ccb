"""Per-mode ODEs, the RK4 integrator and crossing times."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import linear_ssl as ls
from jaxfeat._src.testing import assert_close


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_balanced_per_layer_flow_gives_end_to_end_ode(x64, objective):
    # With v = u, wbar = u^L and d wbar/dt = L u^{L-1} du/dt (claim LSSL-1).
    u = jnp.array([0.1, 0.4, 0.7])
    lam, rho = jnp.array([1.0, 1.3, 0.7]), jnp.array([0.9, 0.8, 1.0])
    for L in range(1, 5):
        du, dv = ls.mode_rhs(u, u, lam, rho, L, objective=objective)
        assert_close(du, dv)  # balancedness: d(v^2 - u^2)/dt = 0 when v = u
        e2e = ls.end_to_end_rhs(u**L, lam, rho, L, objective=objective)
        assert_close(e2e, L * u ** (L - 1) * du)
        paper = ls.end_to_end_rhs(
            u**L, lam, rho, L, objective=objective, convention="paper"
        )
        assert_close(paper, e2e / L)


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_per_layer_flow_is_gradient_of_the_mode_loss(x64, objective):
    # The per-mode (u, v) loss with L encoder layers and one head entry; its negative
    # gradient (target held fixed for JEPA) is mode_rhs, evaluated off balance.
    lam, rho, L = 1.2, 0.7, 3
    sigma2 = lam / rho

    def loss(layers, v):
        w = jnp.prod(layers)
        if objective == "jepa":
            t = jax.lax.stop_gradient(w)
            return 0.5 * (v * w) ** 2 * sigma2 - v * w * t * lam
        return 0.5 * (v * w) ** 2 * sigma2 - v * w * lam

    u, v = 0.6, 0.45
    g_layers, g_v = jax.grad(loss, argnums=(0, 1))(jnp.full(L, u), v)
    du, dv = ls.mode_rhs(u, v, lam, rho, L, objective=objective)
    assert_close(-g_layers, jnp.full(L, du))
    assert_close(-g_v, dv)


def test_rk4_is_fourth_order(x64):
    # y' = -y^2, y(0)=1: y(t) = 1/(1+t). Halving dt cuts the error 16x.
    errs = []
    for n in (40, 80):
        t, y = ls.integrate_rk4(
            lambda y: -(y**2), jnp.asarray(1.0), dt=4.0 / n, n_steps=n
        )
        errs.append(float(jnp.max(jnp.abs(y - 1 / (1 + t)))))
    assert 14 < errs[0] / errs[1] < 18


def test_rk4_logging_and_pytrees(x64):
    rhs = lambda s: {"a": -s["a"], "b": 2 * s["b"]}
    t, ys = ls.integrate_rk4(
        rhs,
        {"a": 1.0 * jnp.ones(2), "b": jnp.ones(())},
        dt=0.01,
        n_steps=100,
        log_every=10,
    )
    assert t.shape == (11,)
    # RK4 global error ~ (rate * dt)^4 * rate * t / 120: 1e-9 relative here.
    np.testing.assert_allclose(ys["a"][:, 0], np.exp(-t), rtol=1e-8)
    np.testing.assert_allclose(ys["b"], np.exp(2 * t), rtol=1e-8)
    with pytest.raises(ValueError, match="n_steps"):
        ls.integrate_rk4(
            rhs, {"a": jnp.ones(2), "b": jnp.ones(())}, dt=0.1, n_steps=15, log_every=10
        )


def test_first_crossing_time(x64):
    t = jnp.linspace(0.0, 2.0, 21)
    # Linear interpolation is exact on a line; Hermite is exact on a cubic.
    assert_close(ls.first_crossing_time(t, 3 * t, 1.0), jnp.asarray(1 / 3))
    w, dw = t**3, 3 * t**2
    assert_close(ls.first_crossing_time(t, w, 2.0, dw), jnp.asarray(2 ** (1 / 3)))
    assert float(ls.first_crossing_time(t, w, 100.0)) == np.inf
    assert float(ls.first_crossing_time(t, w + 1, 0.5)) == 0.0


def test_first_crossing_time_flat_crossing_is_finite(x64):
    # The curve touches the threshold with zero slope at both bracketing samples: the
    # Newton step would divide 0 by 0; the crossing is the sample that reaches it.
    t = jnp.array([0.0, 1.0, 2.0])
    out = ls.first_crossing_time(t, jnp.array([0.0, 1.0, 1.0]), 1.0, jnp.zeros(3))
    assert float(out) == 1.0


@pytest.mark.parametrize(
    "args, match",
    [
        ((jnp.arange(5.0), jnp.arange(3.0), 1.0), "w"),
        ((jnp.arange(3.0), jnp.ones((3, 2)), 1.0), "w"),
        ((jnp.arange(1.0), jnp.arange(1.0), 1.0), "t"),
        ((jnp.arange(3.0), jnp.arange(3.0), float("nan")), "threshold"),
        ((jnp.arange(3.0), jnp.arange(3.0), 1.0, jnp.ones(2)), "dwdt"),
    ],
)
def test_first_crossing_time_bad_input(args, match):
    # under the test suite's jaxtyping hook, shape errors surface as TypeCheckError
    with pytest.raises((ValueError, TypeError), match=match):
        ls.first_crossing_time(*args)


@pytest.mark.parametrize(
    "fn, kwargs, match",
    [
        ("mode_rhs", dict(rho=0.0), "rho"),
        ("mode_rhs", dict(lam=float("nan")), "lam"),
        ("mode_rhs", dict(depth=0), "depth"),
        ("mode_rhs", dict(u=float("nan")), "u"),
        ("end_to_end_rhs", dict(wbar=-0.1), "wbar"),
        ("end_to_end_rhs", dict(depth=0), "depth"),
        ("integrate_mode", dict(eps=-1e-3), "eps"),
        ("integrate_mode", dict(rho=-0.5), "rho"),
        ("integrate_mode", dict(t_max=float("nan")), "t_max"),
        ("time_scale", dict(depth=0), "depth"),
    ],
)
def test_ode_bad_input_names_the_argument(fn, kwargs, match):
    base = dict(u=0.1, v=0.1, wbar=0.1, lam=1.0, rho=0.5, eps=1e-3, depth=2)
    args = base | kwargs
    calls = {
        "mode_rhs": lambda: ls.mode_rhs(
            args["u"],
            args["v"],
            args["lam"],
            args["rho"],
            args["depth"],
            objective="jepa",
        ),
        "end_to_end_rhs": lambda: ls.end_to_end_rhs(
            args["wbar"], args["lam"], args["rho"], args["depth"], objective="mae"
        ),
        "integrate_mode": lambda: ls.integrate_mode(
            args["lam"],
            args["rho"],
            args["eps"],
            args["depth"],
            objective="jepa",
            t_max=args.get("t_max", 10.0),
            n_steps=10,
        ),
        "time_scale": lambda: ls.time_scale(args["depth"], "gradient_flow"),
    }
    with pytest.raises(ValueError, match=match):
        calls[fn]()


def test_broadcast_errors_name_the_arguments_and_rk4_takes_numbers(
    x64, no_runtime_types
):
    """Shapes that do not broadcast raised an unnamed TypeError deep in a trace
    (critical_time's lr, mode_rhs's u/v); integrate_rk4 with a Python float y0
    failed with "'float' object is not subscriptable"."""
    with pytest.raises(ValueError, match="lr"):
        ls.critical_time(
            jnp.ones(3), 1.0, 1e-3, 2, objective="jepa", lr=jnp.full(2, 0.1)
        )
    with pytest.raises(ValueError, match="^u, v, lam"):
        ls.mode_rhs(jnp.ones(3), jnp.ones(2), 1.0, 1.0, 2, objective="jepa")
    # dy/dt = -y from 1.0: RK4 with dt = 0.01 gives exp(-1) to O(dt^4)
    t, ys = ls.integrate_rk4(lambda y: -y, 1.0, dt=0.01, n_steps=100, log_every=100)
    np.testing.assert_allclose(ys[-1], np.exp(-1.0), rtol=1e-9)
    assert float(t[-1]) == pytest.approx(1.0)
