"""Closed-form (cardinal) B-spline basis on uniform grids vs the Cox–de Boor path."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import kan
from jaxfeat._src.testing import check_transforms


def _grid(order):
    # Two features with different origins and spacings (0.4 and 0.64); the inputs
    # below reach outside both grids.
    return jnp.concatenate(
        [
            kan.uniform_grid(1, 5, order, (-1.0, 1.0)),
            kan.uniform_grid(1, 5, order, (0.5, 3.7)),
        ]
    )


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4, 5])
def test_uniform_basis_equals_de_boor(x64, order):
    grid = _grid(order)
    x = jax.random.uniform(jax.random.key(order), (500, 2), minval=-3.0, maxval=6.0)
    fast = kan.bspline_basis(x, grid, order, method="uniform")
    ref = kan.bspline_basis(x, grid, order)
    # Same function, different arithmetic: float64 round-off (the folded truncated
    # powers have terms no larger than ((K+1)/2)^K / K!, at most 2.6 here).
    np.testing.assert_allclose(fast, ref, atol=1e-12)
    if order:
        # Random cotangents weight every basis value separately, so each slope is
        # checked (the plain sum has slope 0 inside the base interval).
        w = jax.random.normal(jax.random.key(10 + order), ref.shape, ref.dtype)
        d_fast = jax.grad(
            lambda v: (w * kan.bspline_basis(v, grid, order, method="uniform")).sum()
        )
        d_ref = jax.grad(lambda v: (w * kan.bspline_basis(v, grid, order)).sum())
        # Both differentiate the same piecewise polynomial: slopes agree to round-off.
        np.testing.assert_allclose(d_fast(x), d_ref(x), atol=1e-10)
        # Forward mode (the custom JVP itself) and, for cubics, its derivative.
        one = lambda f: lambda v: f(v[None])[0]
        fast1 = one(lambda v: kan.bspline_basis(v, grid, order, method="uniform"))
        ref1 = one(lambda v: kan.bspline_basis(v, grid, order))
        jac = lambda f: jax.vmap(jax.jacfwd(f))(x[:20])
        np.testing.assert_allclose(jac(fast1), jac(ref1), atol=1e-10)
        if order == 3:
            hess = lambda f: jax.vmap(jax.jacfwd(jax.jacrev(f)))(x[:20])
            np.testing.assert_allclose(hess(fast1), hess(ref1), atol=1e-9)


def test_uniform_basis_float32_and_transforms():
    grid = kan.uniform_grid(3, 5, 3)
    x = jax.random.normal(jax.random.key(0), (64, 3))
    fast = kan.bspline_basis(x, grid, 3, method="uniform")
    ref = kan.bspline_basis(x, grid, 3)
    # float32: a few ulps of values of size <= 2/3.
    np.testing.assert_allclose(fast, ref, atol=3e-6)
    check_transforms(
        kan.bspline_basis,
        (x[0], grid),
        (x[:4], grid),
        in_axes=(0, None),
        static_kwargs={"order": 3, "method": "uniform"},
    )


def test_uniform_kan_trains_like_de_boor():
    cfg = kan.KANConfig(widths=(4, 6, 2), grid_size=4, order=3)
    fast_cfg = dataclasses.replace(cfg, basis="uniform")
    params = kan.init_kan(jax.random.key(0), cfg)
    grids = kan.kan_grids(cfg)
    x = jax.random.normal(jax.random.key(1), (96, 4)) * 0.7
    y = (x[:, 0] * x[:, 1] > 0).astype(jnp.int32)
    out = jax.vmap(lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=cfg))(x)
    fast = jax.vmap(lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=fast_cfg))(x)
    np.testing.assert_allclose(fast, out, atol=1e-5)  # float32 sums of ~30 terms
    tc = kan.KANTrainConfig(epochs=20, batch_size=32, learning_rate=1e-2)
    p1, l1 = kan.train_kan(
        jax.random.key(2), params, x, y, grids=grids, cfg=cfg, train_cfg=tc
    )
    p2, l2 = kan.train_kan(
        jax.random.key(2), params, x, y, grids=grids, cfg=fast_cfg, train_cfg=tc
    )
    # Same data order, same gradients up to float32 round-off, amplified a little
    # over 60 Adam steps.
    np.testing.assert_allclose(l2, l1, rtol=1e-3)
    assert float(l2[-1]) < 0.8 * float(l2[0])


def test_uniform_basis_rejects_non_uniform_grids():
    cfg = kan.KANConfig(widths=(3, 2), grid_size=4, order=3, basis="uniform")
    params = kan.init_kan(jax.random.key(0), cfg)
    grids = kan.kan_grids(cfg)
    x = jax.random.normal(jax.random.key(1), (40, 3))
    bent = (grids[0].at[:, 5].add(0.05),)
    with pytest.raises(ValueError, match="grids"):
        kan.kan_apply(params, x[0], grids=bent, cfg=cfg)
    with pytest.raises(ValueError, match="grid"):
        kan.bspline_basis(x, bent[0], 3, method="uniform")
    with pytest.raises(ValueError, match="method"):
        kan.bspline_basis(x, grids[0], 3, method="spline")
    with pytest.raises(ValueError, match="basis"):
        kan.KANConfig(widths=(3, 2), basis="cardinal")
    with pytest.raises(ValueError, match="grid_eps"):
        kan.update_kan_grids(params, x, grids=grids, cfg=cfg)
    # grid_eps=1 keeps each row uniform (own origin and step): allowed, and the
    # updated network still evaluates on the fast path.
    p2, g2, c2 = kan.update_kan_grids(params, x, grids=grids, cfg=cfg, grid_eps=1.0)
    slow = dataclasses.replace(c2, basis="de_boor")
    np.testing.assert_allclose(
        kan.kan_apply(p2, x[0], grids=g2, cfg=c2),
        kan.kan_apply(p2, x[0], grids=g2, cfg=slow),
        atol=1e-5,
    )


@pytest.mark.parametrize(("grid_size", "order"), [(2, 1), (3, 1), (3, 2), (4, 3)])
def test_uniform_basis_at_knots_matches_de_boor_and_right_slope(x64, grid_size, order):
    # Every knot (x = 0 is one for G = 2, K = 1, where standardised constant columns
    # sit), plus points outside the grid. At a knot an order-1 spline's slope jumps:
    # both bases must give the one-sided right slope, the right finite difference.
    grid = kan.uniform_grid(1, grid_size, order)
    x = jnp.concatenate([grid[0], jnp.array([-5.0, 5.0])])[:, None]  # (M + 2, 1)
    if order == 1 and grid_size == 2:
        assert 0.0 in np.asarray(x)
    fast = lambda v: kan.bspline_basis(v, grid, order, method="uniform")
    ref = lambda v: kan.bspline_basis(v, grid, order)
    np.testing.assert_allclose(fast(x), ref(x), atol=1e-12)
    one = lambda f: lambda v: f(v[None])[0, 0]  # (1,) -> (nb,)
    d_fast = jax.vmap(jax.jacfwd(one(fast)))(x)[..., 0]  # (M + 2, nb)
    d_rev = jax.vmap(jax.jacrev(one(fast)))(x)[..., 0]
    d_ref = jax.vmap(jax.jacfwd(one(ref)))(x)[..., 0]
    step = 1e-7
    right_fd = (ref(x + step) - ref(x))[:, 0] / step
    # Piecewise polynomials of degree K: the right difference is exact for K = 1 and
    # off by O(step * max|B''|) = O(1e-6) for K >= 2 (float64 round-off ~1e-9).
    np.testing.assert_allclose(d_ref, right_fd, atol=1e-5)
    np.testing.assert_allclose(d_fast, d_ref, atol=1e-12)
    np.testing.assert_allclose(d_rev, d_ref, atol=1e-12)


def test_kan_si_agrees_between_bases_on_a_constant_column(x64):
    # The paper's G = 2, K = 1; a standardised constant column is 0, a knot (KAN-9).
    cfg = kan.KANConfig(widths=(3, 7, 2), grid_size=2, order=1)
    params = jax.tree_util.tree_map(
        lambda a: 3 * a, kan.init_kan(jax.random.key(0), cfg)
    )
    grids = kan.kan_grids(cfg)
    x = jax.random.normal(jax.random.key(1), (50, 3)).at[:, 1].set(0.0)
    fast_cfg = dataclasses.replace(cfg, basis="uniform")
    si = kan.kan_si(params, x, grids=grids, cfg=cfg)
    si_fast = kan.kan_si(params, x, grids=grids, cfg=fast_cfg)
    np.testing.assert_allclose(si_fast, si, atol=1e-12)
    # and the edge slope at 0 is the right finite difference of the edge
    edge = lambda v, basis: kan.layer_edges(
        params[0], grids[0], jnp.array([0.3, v, 0.2]), 1, basis
    )[1, 0]
    step = 1e-7
    right_fd = (edge(step, "de_boor") - edge(0.0, "de_boor")) / step
    for basis in ("de_boor", "uniform"):
        slope = jax.grad(edge)(0.0, basis)
        np.testing.assert_allclose(slope, right_fd, rtol=1e-6)


@pytest.mark.parametrize(
    "grid",
    [
        np.cumsum([0.0] + [1e-6, 3e-6] * 4),  # small steps, uneven
        1e6 + np.array([0.0, 1, 3, 4, 6, 7, 9, 10, 12]),  # large offset, uneven
    ],
)
def test_is_uniform_is_relative_to_the_step(x64, grid):
    """The tolerance rtol * max(|g|, 1) passed these uneven grids, and the uniform
    path then returned basis values off by 0.75 (small steps) or 0.67 (offset)."""
    g = jnp.asarray(grid)[None]
    x = jnp.linspace(grid[2], grid[-3], 7)[:, None]
    with pytest.raises(ValueError, match="^grid: method='uniform' needs"):
        kan.bspline_basis(x, g, 2, method="uniform")
    # the same shapes uniformly spaced still pass, at both scales
    even = jnp.linspace(grid[0], grid[0] + 8 * (grid[1] - grid[0]), 9)[None]
    x = jnp.linspace(even[0, 2], even[0, -3], 7)[:, None]
    np.testing.assert_allclose(
        kan.bspline_basis(x, even, 2, method="uniform"),
        kan.bspline_basis(x, even, 2),
        atol=1e-6,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_basis_on_every_stored_knot(dtype, request):
    """At an input equal to a stored knot, (x - t0)/h can round to k - 1 ulp: x = 0
    on a grid over (-1, 1) with G = 6 gave u = 3.9999998 in float32, so order 0
    took the basis function to the left (values off by 1) and order 1 the left
    slope (off by 2/h). u within its round-off of an integer is now snapped to
    it: order 0 agrees with the Cox–de Boor path exactly, order 1's right slopes
    to round-off of 1/h (float32: 1e-4 relative on slopes up to 2/h = 20), on a
    grid around 0 and one far from it (larger round-off of x - t0)."""
    if dtype == "float64":
        request.getfixturevalue("x64")
    cases = [(g, (-1.0, 1.0)) for g in (2, 6, 10, 12, 14, 20)] + [
        (g, (100.0, 101.0))
        for g in (3, 7)  # round-off of x - t0 ~ eps 200 / h
    ]
    for n_int, span in cases:
        for order in (0, 1):
            grid = kan.uniform_grid(1, n_int, order, span).astype(dtype)
            x = grid[0][:, None]  # every knot, the last one included
            fast = kan.bspline_basis(x, grid, order, method="uniform")
            ref = kan.bspline_basis(x, grid, order)
            np.testing.assert_allclose(fast, ref, atol=1e-5, err_msg=f"G={n_int}")
            if order == 1:
                np.testing.assert_allclose(
                    _slopes(x, grid, "uniform"),
                    _slopes(x, grid, "de_boor"),
                    rtol=1e-4,
                    atol=1e-3,
                )


def _slopes(x, grid, method):
    one = lambda v: kan.bspline_basis(v[None], grid, 1, method=method)[0]
    return jax.vmap(jax.jacfwd(one))(x)


def test_uniform_basis_knot_derivatives_follow_de_boor(x64):
    """The closed form reads only t0 and t1, so its plain autodiff gave dB/dt_k = 0
    for every other knot (and all the weight on t0, t1); grid tangents now
    differentiate the recursion. Checked against the Cox–de Boor path's knot
    Jacobian and central differences of it (float64: 1e-6 on O(1) entries)."""
    grid = kan.uniform_grid(2, 4, 3, (-1.0, 1.0))
    x = jnp.array([[0.3, -0.55], [0.9, 0.0]])
    basis = lambda t, m: kan.bspline_basis(x, t, 3, method=m)
    jac_fast = jax.jacfwd(lambda t: basis(t, "uniform"))(grid)
    jac_ref = jax.jacfwd(lambda t: basis(t, "de_boor"))(grid)
    np.testing.assert_allclose(jac_fast, jac_ref, atol=1e-12)
    # and the reverse mode, through the same JVP
    w = jax.random.normal(jax.random.key(0), basis(grid, "de_boor").shape)
    g_fast = jax.grad(lambda t: (w * basis(t, "uniform")).sum())(grid)
    bump = 1e-6 * jax.random.normal(jax.random.key(1), grid.shape)
    fd = (w * (basis(grid + bump, "de_boor") - basis(grid - bump, "de_boor"))).sum()
    np.testing.assert_allclose((g_fast * bump).sum() * 2, fd, rtol=1e-6)


@pytest.mark.parametrize("order", [2, 3])
def test_uniform_basis_second_derivative_at_knots(x64, order):
    """Snapping u to a knot replaced it by round(u), whose derivative is 0: the first
    derivative (a custom JVP) stayed right, but differentiating it again lost every
    dependence on x, so d2B/dx2 was 0 at each knot. The second derivative of the
    closed form now equals the Cox–de Boor path's at knots and between them; for
    K >= 2 it is a one-sided value of a piecewise polynomial, taken from the right
    by both paths (float64, exact up to round-off: 1e-9 on entries of size 1/h^2)."""
    grid = kan.uniform_grid(1, 4, order, (-1.0, 1.0))  # knots at -1, -0.5, 0, 0.5, 1
    xs = jnp.array([-0.5, 0.0, 0.5, 0.3, -0.85])

    def second(method):
        one = lambda v: kan.bspline_basis(v[None, None], grid, order, method=method)
        return jax.vmap(jax.jacfwd(jax.jacfwd(lambda v: one(v)[0, 0])))(xs)

    ref = second("de_boor")
    assert float(jnp.max(jnp.abs(ref[:3]))) > 1.0  # non-zero at the knots
    np.testing.assert_allclose(second("uniform"), ref, atol=1e-9)
