r"""B-spline bases on arbitrary knot vectors, coefficient fitting and grid updates.

A knot vector `t` of length `M` carries `M - 1 - K` B-splines of order (degree) `K`,
defined by the Cox–de Boor recursion

$$B_{i,0}(x) = [t_i \le x < t_{i+1}],\qquad
B_{i,k}(x) = \frac{x - t_i}{t_{i+k} - t_i} B_{i,k-1}(x)
           + \frac{t_{i+k+1} - x}{t_{i+k+1} - t_{i+1}} B_{i+1,k-1}(x).$$

A zero denominator (repeated knots) makes its term zero. The division is written with
two `where`s so that its gradient is finite too (a plain `where` would still
differentiate `0/0`). Outside `[t_0, t_{M-1})` every basis value is zero.

Convention: intervals are half-open, so at the last knot every order-0 indicator is 0
(as efficient-kan and SciPy's `design_matrix` inside the base interval). The selector
paper's code closes the last interval on the right and clamps denominators at 1e-8;
the two agree for `K >= 1` on distinct knots and differ only at `x == t_{M-1}` for
`K = 0` or with repeated knots.

KAN grids are per input feature: `grid` has shape `(d, M)` and row `p` is the knot
vector of feature `p`. The uniform KAN grid on `[lo, hi]` with `G` intervals and order
`K` has `M = G + 2K + 1` knots `lo + h * arange(-K, G + K + 1)`, `h = (hi - lo) / G`,
and `G + K` basis functions (Liu et al. 2024, arXiv:2404.19756; efficient-kan).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import ArrayLike

from jaxfeat._src import checks, linalg
from jaxfeat.kan._cardinal import grid_tangent_jvp, is_uniform, uniform_basis_lead
from jaxfeat.kan._deboor import knots as _knots
from jaxfeat.kan._deboor import raise_order as _raise_order
from jaxfeat.kan._deboor import recursion as _recursion
from jaxfeat.kan._deboor import safe_div as _safe_div


def _check_order(order) -> None:
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool):
        raise TypeError(f"order: expected a Python int; got {order!r}")
    if order < 0:
        raise ValueError(f"order: expected an integer >= 0; got {order}")


def _check_grid(x, grid, order) -> None:
    _check_order(order)
    checks.check_ndim("grid", grid, 2, "(d, n_knots)")
    d, m = np.shape(grid)
    if m < order + 2:
        raise ValueError(
            f"grid: order {order} needs at least {order + 2} knots per feature; got {m}"
        )
    if np.ndim(x) < 1 or np.shape(x)[-1] != d:
        raise ValueError(
            f"x: expected shape (..., {d}) to match grid's {d} features; "
            f"got {np.shape(x)}"
        )
    checks.check_finite("x", x)
    checks.check_finite("grid", grid)
    if checks.is_concrete(grid):
        g = np.asarray(grid)
        if np.any(np.diff(g, axis=-1) < 0):
            raise ValueError("grid: expected non-decreasing knots in every row")
        flat = np.flatnonzero(g[:, -1] == g[:, 0])
        if flat.size:
            raise ValueError(
                f"grid: row {int(flat[0])} has all knots equal, so every basis "
                "function is zero on it; expected knots spanning an interval (a "
                "constant feature needs grid_from_samples(..., margin > 0))"
            )


def _check_ridge(ridge) -> float:
    # The ridge picks a branch of the compiled fit (static), so it must be concrete.
    if not checks.is_concrete(ridge):
        raise TypeError(
            "ridge: expected a Python float or concrete scalar (it is static under "
            "jit); got a traced value"
        )
    if np.ndim(ridge) != 0:
        raise ValueError(f"ridge: expected a scalar; got shape {np.shape(ridge)}")
    checks.check_positive("ridge", ridge, strict=False)
    return float(ridge)


def uniform_grid(
    n_features: int,
    grid_size: int,
    order: int,
    grid_range: tuple[float | ArrayLike, float | ArrayLike] = (-1.0, 1.0),
    *,
    dtype=None,
) -> jax.Array:
    """The uniform KAN grid, the same knots for every feature.

    Args:
      n_features: number of input features `d`.
      grid_size: number of intervals `G` inside `grid_range` (>= 1).
      order: spline order `K` (>= 0); `K` extra knots are added on each side.
      grid_range: `(lo, hi)`, finite, `lo < hi` (checked when concrete; the ends
        may be traced scalars, e.g. under `vmap`).
      dtype: float dtype; default the current default float.

    Returns:
      `(d, G + 2K + 1)` knots `lo + h * arange(-K, G + K + 1)`, `h = (hi - lo) / G`.
    """
    _check_order(order)
    checks.check_count("n_features", n_features, 1)
    checks.check_count("grid_size", grid_size, 1)
    if len(grid_range) != 2 or any(np.ndim(v) for v in grid_range):
        raise ValueError(
            f"grid_range: expected two scalars (lo, hi); got {grid_range!r}"
        )
    lo, hi = grid_range
    if checks.is_concrete(grid_range):  # traced ends (jit/vmap) are not checked
        lo, hi = float(lo), float(hi)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"grid_range: expected finite lo < hi; got {grid_range!r}")
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    h = (hi - lo) / grid_size
    steps = jnp.arange(-order, grid_size + order + 1, dtype=dtype)
    knots = (lo + h * steps).astype(dtype)
    return jnp.broadcast_to(knots, (n_features, knots.shape[0]))


# Internally the basis axis comes first: `(n_basis, ..., d)`. The recursion slices
# along that axis, so every elementwise op runs over contiguous `(..., d)` blocks;
# with the basis axis last (size G + 2K, short) XLA's CPU code is about 10x slower.


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _basis_lead(x, grid, order):
    return _recursion(x, grid, order)


def _basis_lead_jvp(order, primals, tangents):
    # d/dx B_{i,K} = K (B_{i,K-1} / (t_{i+K} - t_i)
    #                   - B_{i+1,K-1} / (t_{i+K+1} - t_{i+1}))
    # (de Boor): a few elementwise ops instead of differentiating the recursion.
    # Grid tangents (rare: the grid is not trained) fall back to plain autodiff.
    x, grid = primals
    dx, dgrid = tangents
    if not isinstance(dgrid, SymbolicZero):
        plain = lambda a, g: _recursion(a, g, order)
        return grid_tangent_jvp(plain, x, grid, dx, dgrid)
    if order == 0:
        out = _basis_lead(x, grid, order)
        return out, jnp.zeros_like(out)
    lower = _basis_lead(x, grid, order - 1)  # (M - order, ..., d)
    t = _knots(x, grid)
    out = _raise_order(x[None], t, lower, order)
    if isinstance(dx, SymbolicZero):
        return out, jnp.zeros_like(out)
    inv_l = _safe_div(1.0, t[order:-1] - t[: -(order + 1)])
    inv_r = _safe_div(1.0, t[order + 1 :] - t[1:-order])
    return out, order * (lower[:-1] * inv_l - lower[1:] * inv_r) * dx[None]


_basis_lead.defjvp(_basis_lead_jvp, symbolic_zeros=True)


@functools.partial(jax.jit, static_argnames=("order", "method"))
def _basis(x, grid, order, method="de_boor"):
    lead = uniform_basis_lead if method == "uniform" else _basis_lead
    return jnp.moveaxis(lead(x, grid, order), 0, -1)


def bspline_basis(
    x: ArrayLike, grid: ArrayLike, order: int, *, method: str = "de_boor"
) -> jax.Array:
    """B-spline basis values of every feature at `x`.

    Args:
      x: `(..., d)` inputs, any leading axes.
      grid: `(d, M)` non-decreasing knots per feature (repeated knots allowed).
      order: spline order `K` (0 = piecewise constant, 3 = cubic); a Python int.
      method: `"de_boor"` (the recursion, any grid) or `"uniform"` (closed-form
        cardinal B-splines, `_cardinal`; every row of `grid` uniformly spaced).

    Returns:
      `(..., d, M - 1 - K)` values `B_{i,K}(x_p; grid_p)`: non-negative, summing to 1
      on `[t_K, t_{M-1-K})` and zero outside `[t_0, t_{M-1})`. Gradients in `x` and
      `grid` are finite everywhere.

    Raises:
      ValueError: shapes that do not match, decreasing or non-finite knots, a
        concrete `x` with NaN or infinity, order < 0,
        an unknown `method`, or a concrete non-uniform grid with `method="uniform"`.
    """
    _check_grid(x, grid, order)
    checks.check_choice("method", method, ("de_boor", "uniform"))
    if method == "uniform" and checks.is_concrete(grid) and not is_uniform(grid):
        raise ValueError("grid: method='uniform' needs uniformly spaced knots per row")
    x = jnp.asarray(x)
    return _basis(x.astype(jnp.result_type(x, grid)), jnp.asarray(grid), order, method)


def spline_values(
    x: ArrayLike, grid: ArrayLike, coef: ArrayLike, order: int
) -> jax.Array:
    """Splines `S_{q,p}(x_p) = sum_k coef[q, p, k] B_k(x_p; grid_p)`.

    Args:
      x: `(..., d)` inputs.
      grid: `(d, M)` knots.
      coef: `(out, d, M - 1 - K)` coefficients (the KAN layer's layout).
      order: spline order `K`.

    Returns:
      `(..., d, out)` value of every edge spline (the input axis is kept).
    """
    basis = bspline_basis(x, grid, order)
    if np.shape(coef)[1:] != basis.shape[-2:]:
        raise ValueError(
            f"coef: expected shape (out, {basis.shape[-2]}, {basis.shape[-1]}) to "
            f"match grid and order; got {np.shape(coef)}"
        )
    return jnp.einsum("...pk,qpk->...pq", basis, coef)


def fit_coefficients(
    x: ArrayLike,
    y: ArrayLike,
    grid: ArrayLike,
    order: int,
    *,
    ridge: float | ArrayLike = 0.0,
) -> jax.Array:
    """Least-squares spline coefficients per feature: `y[:, p, q] ~ S_{q,p}(x[:, p])`.

    Solved with an SVD (`jnp.linalg.lstsq`), so basis functions with no data give the
    minimum-norm (zero) coefficient instead of a NaN; `ridge > 0` adds
    `ridge * ||c||^2`.

    Args:
      x: `(N, d)` samples.
      y: `(N, d, out)` target values of each edge.
      grid: `(d, M)` knots.
      order: spline order `K`.
      ridge: non-negative Tikhonov weight, a Python float or concrete scalar.

    Returns:
      `(out, d, M - 1 - K)` coefficients.

    Raises:
      ValueError: shapes that do not match, NaN or infinity in concrete inputs, or
        a negative `ridge`.
      TypeError: a traced `ridge` (it selects the compiled program).
    """
    checks.check_ndim("x", x, 2, "(N, d)")
    checks.check_ndim("y", y, 3, "(N, d, out)")
    if np.shape(y)[:2] != np.shape(x):
        raise ValueError(
            f"y: expected shape ({np.shape(x)[0]}, {np.shape(x)[1]}, out); "
            f"got {np.shape(y)}"
        )
    ridge = _check_ridge(ridge)
    checks.check_finite("x", x)
    checks.check_finite("y", y)
    basis = bspline_basis(x, grid, order)  # (N, d, nb)
    return _fit(basis, jnp.asarray(y), ridge)


@functools.partial(jax.jit, static_argnames=("ridge",))
def _fit(basis, y, ridge):
    nb = basis.shape[-1]

    def one(b, t):  # b: (N, nb), t: (N, out)
        if ridge:
            b = jnp.concatenate([b, jnp.sqrt(ridge) * jnp.eye(nb, dtype=b.dtype)])
            t = jnp.concatenate([t, jnp.zeros((nb, t.shape[1]), t.dtype)])
        return linalg.lstsq(b, t)  # (nb, out)

    coef = jax.vmap(one, in_axes=(1, 1))(basis, y)  # (d, nb, out)
    return jnp.transpose(coef, (2, 0, 1))


def grid_from_samples(
    x: ArrayLike,
    grid_size: int,
    order: int,
    *,
    grid_eps: float = 0.02,
    margin: float = 0.01,
) -> jax.Array:
    """A data-adapted grid: quantile knots mixed with uniform ones, then extended.

    The `G + 1` interior knots are `grid_eps * uniform + (1 - grid_eps) * quantiles`
    of each feature's samples on `[min - margin, max + margin]`; `K` knots of the
    uniform step are added on each side (the efficient-kan / pykan update). Discrete
    features give repeated knots, which the basis handles.

    Args:
      x: `(N, d)` samples.
      grid_size: `G`.
      order: `K`.
      grid_eps: weight of the uniform grid in `[0, 1]` (1 = uniform).
      margin: padding added to the sample range.

    Returns:
      `(d, G + 2K + 1)` knots.
    """
    _check_order(order)
    checks.check_ndim("x", x, 2, "(N, d)")
    if np.shape(x)[0] < 1:
        raise ValueError(f"x: expected at least one sample; got shape {np.shape(x)}")
    checks.check_finite("x", x)
    checks.check_count("grid_size", grid_size, 1)
    checks.check_in_range("grid_eps", grid_eps, 0.0, 1.0, closed=(True, True))
    checks.check_positive("margin", margin, strict=False)
    xs = jnp.sort(jnp.asarray(x), axis=0)  # (N, d)
    n = xs.shape[0]
    idx = np.linspace(0, n - 1, grid_size + 1).astype(np.int64)
    adaptive = xs[idx].T  # (d, G + 1)
    lo = xs[0] - margin
    hi = xs[-1] + margin
    h = (hi - lo) / grid_size
    steps = jnp.arange(grid_size + 1, dtype=xs.dtype)
    uniform = lo[:, None] + h[:, None] * steps[None]
    inner = grid_eps * uniform + (1.0 - grid_eps) * adaptive
    if order == 0:
        # The half-open order-0 basis is 0 at the last knot, and with no extension
        # knots the largest sample sits on it when grid_eps = 0 (margin 0 too):
        # move that knot just above it. For K >= 1, B_{n,K} (absent) is 0 there.
        top = jnp.nextafter(xs[-1], jnp.asarray(jnp.inf, xs.dtype))
        inner = inner.at[:, -1].set(jnp.maximum(inner[:, -1], top))
    ext = jnp.arange(1, order + 1, dtype=xs.dtype)
    left = inner[:, :1] - h[:, None] * ext[::-1][None]
    right = inner[:, -1:] + h[:, None] * ext[None]
    return jnp.concatenate([left, inner, right], axis=1)
