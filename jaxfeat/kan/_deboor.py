"""The Cox–de Boor recursion on `(d, M)` knot rows (the general B-spline path).

Shared by `_bspline` (values and the x-derivative) and `_cardinal` (whose closed
form covers uniform rows only, so its knot derivatives come from here).
"""

import jax.numpy as jnp


def safe_div(num, den):
    """`num / den`, 0 where `den <= 0`, with a finite gradient there too."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def knots(x, grid):
    """`grid (d, M)` as `(M, 1, ..., 1, d)`, broadcast explicitly against x (..., d)."""
    return grid.T.reshape((grid.shape[1],) + (1,) * (x.ndim - 1) + (grid.shape[0],))


def recursion(x, grid, order):
    """Basis values `(M - 1 - order, ..., d)` of x `(..., d)` by Cox–de Boor."""
    t = knots(x, grid)
    xe = x[None]
    b = ((xe >= t[:-1]) & (xe < t[1:])).astype(t.dtype)
    for k in range(1, order + 1):
        b = raise_order(xe, t, b, k)
    return b


def raise_order(xe, t, b, k):
    """Order `k - 1` values `b` to order `k` (one step of the recursion).

    Reciprocal knot spans are computed on the grid's shape, not per sample: the
    per-sample work is multiplications only.
    """
    inv_l = safe_div(1.0, t[k:-1] - t[: -(k + 1)])
    inv_r = safe_div(1.0, t[k + 1 :] - t[1:-k])
    return (xe - t[: -(k + 1)]) * inv_l * b[:-1] + (t[k + 1 :] - xe) * inv_r * b[1:]
