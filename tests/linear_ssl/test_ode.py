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
