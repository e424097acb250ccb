"""B-spline basis, fits and grids vs SciPy, hand values and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import BSpline

from jaxfeat import kan


@pytest.mark.parametrize("order", [0, 1, 2, 3, 5])
def test_basis_matches_scipy_design_matrix(x64, order):
    # Non-uniform knots with a repeated interior knot; inside [t_K, t_{M-1-K}).
    t = np.array([-2.0, -1.5, -1.0, -0.2, 0.3, 0.3, 0.9, 1.4, 2.0, 2.2, 3.0, 3.5])
    x = np.linspace(t[order], t[len(t) - 1 - order], 101)[:-1]
    got = np.asarray(
        kan.bspline_basis(jnp.asarray(x)[:, None], jnp.asarray(t)[None], order)
    )
    want = BSpline.design_matrix(x, t, order).toarray()
    # Both evaluate the same recursion in float64: agreement to round-off.
    np.testing.assert_allclose(got[:, 0], want, atol=1e-12)


def test_known_answer_and_partition_of_unity(x64):
    t = jnp.arange(7.0)[None]
    c = jnp.array([-1.0, 2.0, 0.0, -1.0])[None, None]
    s = kan.spline_values(jnp.array([2.5]), t, c, 2)
    assert float(s[0, 0]) == pytest.approx(1.375, abs=1e-15)
    g = kan.uniform_grid(1, 2, 1)  # knots -2..2
    x = jnp.array([-2.5, -1.5, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0])[:, None]
    sums = kan.bspline_basis(x, g, 1).sum(-1)[:, 0]
    np.testing.assert_allclose(sums, [0, 0.5, 1, 1, 1, 1, 0.5, 0], atol=1e-15)
    b = kan.bspline_basis(
        jnp.linspace(-3, 3, 301)[:, None], kan.uniform_grid(1, 5, 3), 3
    )
    assert float(b.min()) >= 0.0
    assert int(jnp.max(jnp.sum(b > 0, axis=-1))) <= 4  # local support: K + 1


def test_gradients_finite_at_knots_outside_and_repeated_knots():
    g = jnp.array([[0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 2.0]])  # repeated knots
    c = jnp.ones((1, 1, 5))
    f = lambda x, t: jnp.sum(kan.spline_values(x[None, None], t, c, 2))
    for x in [-1.0, 0.0, 0.5, 1.0, 2.0, 3.0]:
        gx, gt = jax.grad(f, argnums=(0, 1))(jnp.asarray(x), g)
        assert np.isfinite(float(gx)) and bool(jnp.all(jnp.isfinite(gt)))


def test_derivative_matches_finite_differences(x64):
    g = kan.uniform_grid(3, 4, 3)
    c = jax.random.normal(jax.random.key(0), (2, 3, 7))
    x = jnp.array([-0.73, 0.11, 0.52])
    f = lambda v: kan.spline_values(v, g, c, 3)
    jac = jax.jacfwd(f)(x)  # (3, 2, 3)
    h = 1e-6
    for p in range(3):
        e = jnp.zeros(3).at[p].set(h)
        fd = (f(x + e) - f(x - e)) / (2 * h)
        # central differences: O(h^2) truncation, O(eps/h) round-off ~1e-10
        np.testing.assert_allclose(jac[..., p], fd, atol=1e-8)


def test_fit_reproduces_a_spline_and_handles_empty_basis(x64):
    g = kan.uniform_grid(2, 6, 3)
    c = jax.random.normal(jax.random.key(1), (3, 2, 9))
    x = jax.random.uniform(jax.random.key(2), (200, 2), minval=-1, maxval=1)
    y = kan.spline_values(x, g, c, 3)
    np.testing.assert_allclose(kan.fit_coefficients(x, y, g, 3), c, atol=1e-9)
    # data only in [-1, 0): basis functions supported on (0.33, 1.67) see no data.
    xl = x * 0.5 - 0.5
    fit = kan.fit_coefficients(xl, kan.spline_values(xl, g, c, 3), g, 3)
    assert bool(jnp.all(jnp.isfinite(fit)))
    np.testing.assert_allclose(
        kan.spline_values(xl, g, fit, 3), kan.spline_values(xl, g, c, 3), atol=1e-9
    )
    np.testing.assert_allclose(fit[:, :, -2:], 0.0, atol=1e-12)  # min-norm zeros


def test_grid_from_samples_quantiles_and_discrete_features():
    x = jnp.stack([jnp.linspace(0.0, 1.0, 100), jnp.repeat(jnp.arange(4.0), 25)], 1)
    g = kan.grid_from_samples(x, 4, 2, grid_eps=0.0, margin=0.0)
    assert g.shape == (2, 9)
    # quantile knots at sample ranks linspace(0, 99, 5) -> 0, 24, 49, 74, 99
    np.testing.assert_allclose(g[0, 2:7], x[jnp.array([0, 24, 49, 74, 99]), 0])
    assert bool(jnp.all(jnp.diff(g, axis=1) >= 0))
    b = kan.bspline_basis(x, g, 2)  # repeated knots on the discrete feature
    assert bool(jnp.all(jnp.isfinite(b)))
    grad = jax.grad(lambda v: jnp.sum(kan.bspline_basis(v, g, 2) ** 2))(x)
    assert bool(jnp.all(jnp.isfinite(grad)))
    gu = kan.grid_from_samples(x, 4, 2, grid_eps=1.0, margin=0.0)
    np.testing.assert_allclose(gu[0], jnp.linspace(-0.5, 1.5, 9), atol=1e-6)  # h = 1/4


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kan.bspline_basis(jnp.zeros((3, 2)), jnp.zeros((3, 8)), 2), "x"),
        (
            lambda: kan.bspline_basis(jnp.zeros((3, 1)), jnp.arange(8.0)[None], -1),
            "order",
        ),
        (
            lambda: kan.bspline_basis(jnp.zeros((3, 1)), jnp.arange(3.0)[None], 2),
            "grid",
        ),
        (
            lambda: kan.bspline_basis(jnp.zeros((3, 1)), -jnp.arange(8.0)[None], 2),
            "grid",
        ),
        (lambda: kan.uniform_grid(2, 0, 3), "grid_size"),
        (lambda: kan.uniform_grid(2, 3, 3, (1.0, -1.0)), "grid_range"),
        (
            lambda: kan.fit_coefficients(
                jnp.full((4, 1), jnp.nan),
                jnp.zeros((4, 1, 1)),
                kan.uniform_grid(1, 2, 1),
                1,
            ),
            "x",
        ),
        (
            lambda: kan.fit_coefficients(
                jnp.zeros((4, 1)), jnp.zeros((4, 2, 1)), kan.uniform_grid(1, 2, 1), 1
            ),
            "y",
        ),
        (
            lambda: kan.grid_from_samples(jnp.zeros((4, 1)), 3, 1, grid_eps=2.0),
            "grid_eps",
        ),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("order", [0, 1, 3])
def test_closed_form_derivative_equals_autodiff_of_the_recursion(x64, order):
    from jaxfeat.kan._bspline import _recursion

    g = kan.uniform_grid(3, 4, order)
    x = jnp.array([-0.73, 0.5, 1.52])  # 0.5 is a knot
    fast = lambda v: kan.bspline_basis(v, g, order)
    plain = lambda v: jnp.moveaxis(_recursion(v, g, order), 0, -1)
    # same arithmetic reordered: round-off only
    np.testing.assert_allclose(jax.jacrev(fast)(x), jax.jacrev(plain)(x), atol=1e-13)
    np.testing.assert_allclose(jax.jacfwd(fast)(x), jax.jacfwd(plain)(x), atol=1e-13)
    if order == 1:  # second derivatives through the rule (one order: compile time)
        h = lambda f: jax.hessian(lambda v: jnp.sum(f(v) ** 2))(x)
        np.testing.assert_allclose(h(fast), h(plain), atol=1e-12)
    gg = lambda f: jax.grad(lambda t: jnp.sum(f(x, t) ** 2))(g)  # grid tangents
    np.testing.assert_allclose(
        gg(lambda v, t: kan.bspline_basis(v, t, order)),
        gg(lambda v, t: jnp.moveaxis(_recursion(v, t, order), 0, -1)),
        atol=1e-13,
    )
