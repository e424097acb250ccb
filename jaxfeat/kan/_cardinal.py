r"""Closed-form B-spline bases on uniform grids (cardinal B-splines).

On a uniformly spaced knot vector $t_i = t_0 + i h$ every basis function is a shift of
one cardinal B-spline: $B_{j,K}(x) = N_K(u - j)$ with $u = (x - t_0)/h$, where $N_K$
is supported on $[0, K+1]$, symmetric about $c = (K+1)/2$, and (truncated powers)

$$N_K(s) = \frac{1}{K!}\sum_{r=0}^{K+1} (-1)^r \binom{K+1}{r} (s - r)_+^K .$$

Folding $s$ onto $[\cdot, c]$ by the symmetry, $s' = c - |s - c|$, only the terms with
$r < c$ are non-zero, which both halves the work and bounds the cancellation (the
largest term is $c^K/K!$). Each basis value is a handful of elementwise operations with
no shared intermediate, whereas the Cox–de Boor recursion, once XLA fuses it into one
loop, re-evaluates its whole triangle of lower orders for every output element; for
cubic KAN layers the basis is several times cheaper, and training the benchmark KAN
(`benchmarks/kan.py`) about 2.2x faster on CPU (with the slopes of `_tangent`).

Valid only when every grid row is uniformly spaced (each row may have its own $t_0$ and
$h$): the initial KAN grids, or grids updated with `grid_eps=1`. Order 0 uses the
half-open indicator $[0 \le s < 1]$, the convention of `bspline_basis`. An input on a
knot can land an ulp left of it in $u$; $u$ within its round-off of an integer is
snapped to it, so knots agree with the Cox–de Boor path (`_snap_to_knots`).

Slopes are right-continuous: at a knot, where the slope of an order-1 spline jumps,
the one-sided right derivative is used, as the Cox–de Boor path's half-open indicators
give (and torch autograd through the authors' recursion); for `K >= 2` the slope is
continuous and the two one-sided values agree.

References:
  de Boor 1978, *A Practical Guide to Splines*, ch. IX (cardinal B-splines);
  Schoenberg 1946 (truncated-power form).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxfeat.kan._deboor import knots, recursion, safe_div


def _scaled(x, grid):
    # u = (x - t0) / h per input, and h, broadcast against x (..., d)
    row = (1,) * (x.ndim - 1) + (grid.shape[0],)
    t0 = grid[:, 0].reshape(row)
    h = (grid[:, 1] - grid[:, 0]).reshape(row)
    u = (x - t0) / h
    # round-off of u: of x - t0 (and of the stored knots, of size |t0| + |u| h)
    err = jnp.finfo(u.dtype).eps * ((jnp.abs(x) + jnp.abs(t0)) / h + jnp.abs(u) + 1)
    return _snap_to_knots(u, 8 * err), h


def _snap_to_knots(u, tol):
    # Round-off in (x - t0)/h can put an input that sits exactly on a knot t_k at
    # u = k - 1 ulp (x = 0, a standardised constant column, on a grid over (-1, 1)
    # with G even): order 0 then took the basis function to the left and order 1
    # the left slope, unlike the Cox-de Boor path. A u within its round-off of an
    # integer is snapped to it (the knot, right-continuous), by elementwise ops
    # only: comparing x with the stored knots instead needs two gathers per input,
    # which made training the benchmark KAN 40% slower. The cost: an input within
    # that round-off (a few ulps) *below* a knot is taken as on it too. The snap is
    # a constant shift (stop_gradient), so u keeps du/dx = 1/h there: `k` alone
    # has derivative 0, which zeroed every second derivative at the knots.
    k = jnp.round(u)
    return jnp.where(jnp.abs(u - k) <= tol, u + jax.lax.stop_gradient(k - u), u)


def _cardinal_terms(s, order, power):
    # sum_{r < c} (-1)^r C(K+1, r) / K! * (folded - r)_+^power, folded = c - |s - c|
    c = (order + 1) / 2
    folded = c - jnp.abs(s - c)  # N_K(s) = N_K(folded); negative outside the support
    total = jnp.zeros_like(folded)
    for r in range(math.ceil(c)):
        z = jnp.maximum(folded - r, 0)
        zp = (z > 0).astype(z.dtype) if power == 0 else z**power
        w = (-1) ** r * math.comb(order + 1, r) / math.factorial(order)
        total = total + w * zp
    return total


def _values(x, grid, order):
    # basis values (nb, ..., d), all basis functions in one vectorised expression
    n_basis = grid.shape[1] - order - 1
    u, _ = _scaled(x, grid)
    j = jnp.arange(n_basis, dtype=u.dtype).reshape((n_basis,) + (1,) * u.ndim)
    s = u[None] - j
    if order == 0:
        return ((s >= 0) & (s < 1)).astype(u.dtype)
    return _cardinal_terms(s, order, order)


def _tangent(x, grid, order, dx):
    # d values = N_K'(u - j) dx / h, one basis function at a time: unstacked, the
    # reverse pass contracts the cotangent with each slope in one elementwise loop
    # (a stacked (nb, ..., d) slope array is materialised with its broadcast
    # constants and reduced: the benchmark KAN then trains about 1.6x slower on CPU).
    n_basis = grid.shape[1] - order - 1
    if order == 0:
        return jnp.zeros((n_basis,) + x.shape, x.dtype)
    return jnp.stack([slope * dx for slope in _slopes(x, grid, order)])


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _slopes(x, grid, order):
    """`dB_{j,K}/dx` at x `(..., d)` for `K >= 1`, a tuple over j; right-continuous.

    Closed form. Its own derivatives (second and higher derivatives of the basis,
    knot tangents of the slopes) differentiate the Cox–de Boor form of the slope
    (`_recursion_slopes`): the folded closed form is exact in value, but its plain
    autodiff is not at the knots, where `sign`, `maximum` and the snap to knots
    have one-sided or averaged derivatives (d2B/dx2 came out 0 or halved there).
    """
    n_basis = grid.shape[1] - order - 1
    u, h = _scaled(x, grid)
    if order == 1:
        # N_1' = [0 <= s < 1] - [1 <= s < 2]: the slope jumps at every knot, and the
        # half-open steps take its right value there (the folded form below would
        # give 0 at the knots: `(z > 0)` and `sign(0)` vanish there).
        return tuple(_right_slope_order1(u - j) / h for j in range(n_basis))
    # For K >= 2 the slope is continuous, so the folded form is exact at the knots
    # too (at the centre c, where sign(0) = 0, N_K' vanishes by symmetry).
    c = (order + 1) / 2
    scale = order / h
    return tuple(
        _cardinal_terms(u - j, order, order - 1) * jnp.sign(c - (u - j)) * scale
        for j in range(n_basis)
    )


def _recursion_slopes(x, grid, order):
    # dB_{j,K}/dx = K (B_{j,K-1} / (t_{j+K} - t_j)
    #                  - B_{j+1,K-1} / (t_{j+K+1} - t_{j+1}))
    # on the Cox-de Boor values, whose half-open indicators make every derivative of
    # it right-continuous at the knots
    t = knots(x, grid)
    low = recursion(x, grid, order - 1)  # (nb + 1, ..., d)
    scaled = safe_div(low, t[order:] - t[:-order])
    return tuple(order * (scaled[:-1] - scaled[1:]))


def _slopes_jvp(order, primals, tangents):
    return jax.jvp(lambda a, g: _recursion_slopes(a, g, order), primals, tangents)


_slopes.defjvp(_slopes_jvp)


def _right_slope_order1(s):
    # right derivative of the hat N_1 on [0, 2]: 1 on [0, 1), -1 on [1, 2), else 0
    return jnp.where((s >= 0) & (s < 2), jnp.where(s < 1, 1.0, -1.0), 0.0).astype(
        s.dtype
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def uniform_basis_lead(x, grid, order):
    """Basis values with the basis axis first, `(M - 1 - K, ..., d)`, for uniform rows.

    Differentiable in `x` by the closed-form slope $N_K'(u - j)/h$, one basis function
    at a time (see `_tangent`); grid tangents (the grid is not trained) differentiate
    the Cox–de Boor recursion, whose values these are: the closed form reads only
    $t_0$ and $t_1$, so its own autodiff would give no derivative in the other knots.

    Args:
      x: `(..., d)` inputs.
      grid: `(d, M)` knots, each row uniformly spaced (not checked here).
      order: spline order `K >= 0`, a Python int.

    Returns:
      `B_{j,K}(x_p)` for `j < M - 1 - K`, the layout of `_bspline._basis_lead`.
    """
    return _values(x, grid, order)


def grid_tangent_jvp(fn, x, grid, dx, dgrid):
    """Plain autodiff JVP of `fn(x, grid)` (for grid tangents; a zero `dx` allowed)."""
    dx = jnp.zeros_like(x) if isinstance(dx, SymbolicZero) else dx
    return jax.jvp(fn, (x, grid), (dx, dgrid))


def _uniform_basis_jvp(order, primals, tangents):
    x, grid = primals
    dx, dgrid = tangents
    if not isinstance(dgrid, SymbolicZero):
        plain = lambda a, g: recursion(a, g, order)
        return grid_tangent_jvp(plain, x, grid, dx, dgrid)
    values = _values(x, grid, order)
    if isinstance(dx, SymbolicZero):
        return values, jnp.zeros_like(values)
    return values, _tangent(x, grid, order, dx)


uniform_basis_lead.defjvp(_uniform_basis_jvp, symbolic_zeros=True)


def is_uniform(grid, *, rtol: float = 1e-5) -> bool:
    """Whether every row of a concrete `(d, M)` grid is uniformly spaced.

    Steps may differ from the first by `rtol` times that step plus the round-off of
    the knots themselves (8 eps of the grid's dtype times its largest |knot|). A
    tolerance on the knots' scale alone (`rtol * max(|g|, 1)`) passed uneven grids
    of small steps or large offsets.
    """
    raw = np.asarray(grid)
    eps = np.finfo(raw.dtype if np.issubdtype(raw.dtype, np.floating) else float).eps
    g = raw.astype(np.float64)
    steps = np.diff(g, axis=-1)
    round_off = 8 * eps * np.abs(g).max(axis=-1, keepdims=True)
    tol = rtol * np.abs(steps[:, :1]) + round_off
    return bool(np.all(steps > 0) and np.all(np.abs(steps - steps[:, :1]) <= tol))
