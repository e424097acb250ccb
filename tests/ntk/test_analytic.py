"""Infinite-width kernels: golden values, quadrature, Monte Carlo, identities."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import ntk
from jaxfeat._src.testing import assert_close, assert_rel_fro

X1 = np.array([[1.0, 0.0]])
X2 = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, np.sqrt(3) / 2], [-1.0, 0.0]])
# Spec table B (neural-tangents Dense(1, b) -> Relu -> Dense(1, b), 'ntk' param.)
GOLDEN = {
    0.0: ([0.25, 0.0795775, 0.1522494, 0.0], [0.5, 0.0795775, 0.2355828, 0.0]),
    0.1: (
        [0.265, 0.0936846, 0.1669656, 0.0105955],
        [0.52, 0.0962158, 0.2541023, -0.0113170],
    ),
    1.0: (
        [1.75, 1.5440804, 1.6404459, 1.3771224],
        [2.5, 1.9102202, 2.1489274, 1.5291658],
    ),
}


@pytest.mark.parametrize("b_std", sorted(GOLDEN))
def test_relu_golden_values(x64, b_std):
    cfg = ntk.MLPConfig(in_dim=2, widths=(1,), b_std=b_std)
    k = ntk.analytic_kernels(cfg, jnp.asarray(X1), jnp.asarray(X2))
    nngp, ntk_ = GOLDEN[b_std]
    np.testing.assert_allclose(k.nngp[0], nngp, atol=1e-6)
    np.testing.assert_allclose(k.ntk[0], ntk_, atol=1e-6)
    x, y = jnp.array([[1.0, 2.0, 3.0]]), jnp.array([[3.0, -1.0, 2.0]])
    k3 = ntk.analytic_kernels(ntk.MLPConfig(in_dim=3, widths=(1,), b_std=b_std), x, y)
    row = {
        0.0: (1.4209948, 2.1987726),
        0.1: (1.4357070, 2.2172787),
        1.0: (2.8963014, 4.0632633),
    }[b_std]
    np.testing.assert_allclose([k3.nngp[0, 0], k3.ntk[0, 0]], row, atol=1e-6)


@pytest.mark.parametrize(
    ("act", "method"), [("relu", "polar"), ("erf", "polar"), ("erf", "gauss_hermite")]
)
def test_quadrature_matches_closed_forms(key, x64, act, method):
    x = jax.random.normal(key, (6, 4))
    for depth in (1, 3):
        cfg = ntk.MLPConfig(in_dim=4, widths=(1,) * depth, activation=act, b_std=0.2)
        cf = ntk.analytic_kernels(cfg, x)
        qd = ntk.analytic_kernels(cfg, x, method=method)
        np.testing.assert_allclose(qd.nngp, cf.nngp, atol=1e-6)
        np.testing.assert_allclose(qd.ntk, cf.ntk, atol=1e-6)


def _monte_carlo(key, cfg, x, n_seeds):
    """Mean empirical NNGP and traced NTK over random inits.

    The NNGP estimate is the readout's expectation over its own weights, the Gram of
    the last layer's scaled inputs plus s_b^2, whose error shrinks with width (an
    output-covariance estimate would need many outputs instead).
    """
    f = functools.partial(ntk.mlp_apply, cfg=cfg)
    taps = functools.partial(ntk.mlp_taps, cfg=cfg)
    ntk_fn = ntk.empirical_ntk_fn(f, structure=taps)

    def one(k):
        p = ntk.init_mlp(k, cfg)
        _, inputs, scales = jax.vmap(taps, in_axes=(None, 0))(p, x)
        return inputs[-1] @ inputs[-1].T + scales[-1][0] ** 2, ntk_fn(p, x)

    nngp, ntk_ = jax.lax.map(one, jax.random.split(key, n_seeds))
    return nngp.mean(0), ntk_.mean(0)


@pytest.mark.parametrize(
    ("act", "depth"), [("relu", 1), ("relu", 2), ("erf", 1), ("tanh", 1)]
)
def test_monte_carlo_width_converges_to_analytic(key, act, depth):
    # Relative Frobenius error of an average over S draws of width n: ~c/sqrt(n S);
    # measured <= 1.1% here at n = 2048, S = 8, 16 outputs; acceptance bound 2%.
    x = jax.random.normal(key, (10, 8))
    cfg = ntk.MLPConfig(
        in_dim=8, widths=(2048,) * depth, out_dim=16, activation=act, b_std=0.3
    )
    nngp, ntk_ = _monte_carlo(jax.random.fold_in(key, 1), cfg, x, 8)
    exact = ntk.analytic_kernels(cfg, x)
    assert_rel_fro(nngp, exact.nngp, tol=0.02)
    assert_rel_fro(ntk_, exact.ntk, tol=0.02)


def test_identities(x64, key):
    x = jax.random.normal(key, (5, 3))
    relu = ntk.MLPConfig(in_dim=3, widths=(1,), b_std=0.0)
    k = ntk.analytic_kernels(relu, x)
    # Theta(x, x) = |x|^2/d (arccos at cos = 1 costs sqrt(eps) ~ 1e-8)
    np.testing.assert_allclose(jnp.diag(k.ntk), jnp.sum(x**2, 1) / 3, rtol=1e-7)
    k2 = ntk.analytic_kernels(relu, 2.5 * x, x)
    # positive 1-homogeneity; arccos near cos = 1 loses sqrt(eps) ~ 1e-8 on the diagonal
    np.testing.assert_allclose(k2.ntk, 2.5 * k.ntk, rtol=1e-7)
    lin = ntk.MLPConfig(in_dim=3, widths=(), b_std=0.4)  # no hidden layer
    kl = ntk.analytic_kernels(lin, x)
    assert_close(kl.ntk, x @ x.T / 3 + 0.16)
    lin_act = ntk.MLPConfig(in_dim=3, widths=(1, 1), activation="linear", b_std=0.0)
    assert_close(ntk.analytic_kernels(lin_act, x).nngp, x @ x.T / 3)


def test_bad_input(key):
    x = jax.random.normal(key, (4, 3))
    with pytest.raises(ValueError, match="method"):
        ntk.analytic_kernels(ntk.MLPConfig(in_dim=3), x, method="monte_carlo")
    with pytest.raises(ValueError, match="closed form"):
        ntk.analytic_kernels(
            ntk.MLPConfig(in_dim=3, activation="tanh"), x, method="closed_form"
        )
    with pytest.raises(ValueError, match="NTK parameterisation"):
        ntk.analytic_kernels(ntk.MLPConfig(in_dim=3, parameterization="standard"), x)
    with pytest.raises((ValueError, TypeError), match="x2"):
        ntk.analytic_kernels(ntk.MLPConfig(in_dim=3), x, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="activation"):
        ntk.MLPConfig(in_dim=3, activation="swish")


@pytest.mark.parametrize(
    ("act", "method"),
    [("relu", "closed_form"), ("relu", "polar"), ("erf", "polar"), ("tanh", "polar")],
)
def test_zero_input_without_bias(x64, act, method):
    # x = 0 with b_std = 0 has zero variance: u = 0, so every kernel entry with it
    # is 0 (neural-tangents gives 0); the closed form and quadratures divided 0/0.
    cfg = ntk.MLPConfig(in_dim=2, widths=(1, 1), activation=act, b_std=0.0)
    x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    k = ntk.analytic_kernels(cfg, x, method=method)
    for kern in (k.nngp, k.ntk):
        assert bool(jnp.all(jnp.isfinite(kern)))
        np.testing.assert_array_equal(kern[0], 0.0)
        np.testing.assert_array_equal(kern[:, 0], 0.0)
    if act == "relu":  # by hand: q0 = 1/2, K1 = 1/4, Theta1 = 1/4 + Theta0/2 = 1/2,
        # K2 = 1/8, Theta2 = 1/8 + Theta1/2 = 3/8
        np.testing.assert_allclose(k.ntk[1, 1], 0.375, rtol=1e-7)


@pytest.mark.parametrize(
    ("act", "method"),
    [
        ("relu", "closed_form"),
        ("erf", "closed_form"),
        ("relu", "polar"),
        ("tanh", "polar"),
        ("tanh", "gauss_hermite"),
    ],
)
def test_input_gradients_finite_and_correct(key, x64, act, method):
    """Every kernel's diagonal has correlation 1, where sqrt(1 - rho^2) and arccos
    have infinite slope; rho stays 1 along the diagonal, and autodiff's inf * 0
    made every input gradient NaN (all but erf's closed form). The gradient of the
    summed kernels now matches central differences (float64, step 1e-5: error
    ~1e-9 on O(1) values; tol 1e-6) and, for the quadratures, the closed form's."""
    cfg = ntk.MLPConfig(in_dim=3, widths=(8, 8), activation=act, b_std=0.3)
    kx, kd = jax.random.split(key)
    x = jax.random.normal(kx, (4, 3))
    direction = jax.random.normal(kd, x.shape)
    for kind in ("nngp", "ntk"):
        f = functools.partial(_summed_kernel, cfg, method=method, kind=kind)
        g = jax.grad(f)(x)
        assert bool(jnp.all(jnp.isfinite(g))), (kind, g)
        if method != "polar":  # the polar nodes follow rho (piecewise in it)
            fd = (f(x + 1e-5 * direction) - f(x - 1e-5 * direction)) / 2e-5
            np.testing.assert_allclose(jnp.vdot(g, direction), fd, rtol=1e-6)
        if act == "relu" and method != "closed_form":
            exact = jax.grad(_summed_kernel, argnums=1)(
                cfg, x, method="closed_form", kind=kind
            )
            np.testing.assert_allclose(g, exact, rtol=1e-6, atol=1e-8)


def _summed_kernel(cfg, x, *, method, kind):
    return getattr(ntk.analytic_kernels(cfg, x, method=method), kind).sum()


@pytest.mark.parametrize("scale", [3.0, 10.0, 30.0])
def test_polar_rule_accurate_at_large_variance(key, x64, scale):
    # q ~ scale^2: the derivative term E[phi'(u) phi'(v)] is peaked within r ~ 1/s of
    # the origin; Gauss-Laguerre in r^2/2 missed it (erf NTK off by 2.7e-3 at q ~ 9,
    # 5e-2 at q ~ 100). Measured now <= 1e-7 up to scale 30 (64 nodes).
    x = scale * jax.random.normal(key, (4, 4))
    for act in ("erf", "relu"):
        cfg = ntk.MLPConfig(in_dim=4, widths=(1,), activation=act, b_std=0.2)
        cf = ntk.analytic_kernels(cfg, x)
        pol = ntk.analytic_kernels(cfg, x, method="polar")
        for a, b in ((pol.ntk, cf.ntk), (pol.nngp, cf.nngp)):
            err = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
            assert err < 1e-6, (act, err)


def test_bad_quadrature_input(key):
    x = jax.random.normal(key, (4, 3))
    cfg = ntk.MLPConfig(in_dim=3, activation="tanh")
    for n in (0, 151):
        with pytest.raises(ValueError, match="^n_nodes"):
            ntk.analytic_kernels(cfg, x, n_nodes=n)
    with pytest.raises(ValueError, match="^x1: expected finite"):
        ntk.analytic_kernels(cfg, x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="^x2: expected finite"):
        ntk.analytic_kernels(cfg, x, x.at[0, 0].set(jnp.inf))
