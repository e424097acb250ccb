"""One test per theory claim of theory/kan.md (float64, tiny sizes).

References are independent of jaxfeat's Cox–de Boor code: SciPy's B-splines
(`BSpline.basis_element`, `BSpline.design_matrix`, `BSpline.derivative`), hand
computations, central finite differences, and dense NumPy edge sums and losses.

The file is compile-bound, so parameters and inputs are NumPy float64 arrays (eager
`jnp` arithmetic would compile one small program per shape), every jaxfeat call goes
through a few module-level jitted functions, and all KAN scores of one architecture
come from one jitted bundle that compiles once and is reused across tests.
"""

import functools
import math

import jax
import numpy as np
import pytest
from scipy.interpolate import BSpline
from scipy.special import logsumexp, ndtr

from jaxfeat import kan
from jaxfeat._src.testing import assert_close

pytestmark = pytest.mark.usefixtures("x64")

ONE = kan.KANConfig(widths=(3, 2), grid_size=3, order=2)  # one layer, two logits
TWO = kan.KANConfig(widths=(3, 4, 2), grid_size=3, order=2)  # [d, H, C]
REG = kan.KANConfig(widths=(3, 1), grid_size=3, order=2)  # one regression output
N = 16  # samples: every bundle call takes (N, 3) inputs, so it compiles once
POOL = 1024  # size of the single random draw behind `_normal`
# distinct, non-uniform knots for the derivative and majorization checks
KNOTS = np.array([-2.0, -1.3, -1.0, -0.2, 0.3, 0.5, 1.1, 1.6, 2.4])
N_EVAL = 512  # spline evaluation points (one compiled program per order)


# ---------------------------------------------------------------- references


def _grid_ref(cfg, d):
    """The efficient-kan knots `lo + h * arange(-K, G + K + 1)`, built in NumPy."""
    lo, hi = cfg.grid_range
    h = (hi - lo) / cfg.grid_size
    t = lo + h * np.arange(-cfg.order, cfg.grid_size + cfg.order + 1)
    return np.broadcast_to(t, (d, t.size))


def _basis_ref(t, order, x):
    """`(n, M - 1 - K)` B-splines on distinct knots `t`, anywhere on the real line."""
    cols = []
    for i in range(len(t) - order - 1):
        b = BSpline.basis_element(t[i : i + order + 2], extrapolate=False)(x)
        cols.append(np.nan_to_num(b, nan=0.0))  # NaN = outside the support
    return np.stack(cols, axis=-1)


def _edges_ref(layer, cfg, x):
    """`z[n, p, q] = W_b silu(x_p) + S sum_k C_k B_k(x_p)`, by SciPy and NumPy."""
    w, c, s = (np.asarray(a) for a in layer)
    x = np.asarray(x)
    t = _grid_ref(cfg, x.shape[1])
    silu = x / (1 + np.exp(-x))
    z = np.empty((x.shape[0], x.shape[1], w.shape[0]))
    for p in range(x.shape[1]):
        basis = _basis_ref(t[p], cfg.order, x[:, p])  # (n, nb)
        z[:, p, :] = silu[:, p, None] * w[:, p][None] + (basis @ c[:, p].T) * s[:, p]
    return z


def _forward_ref(params, cfg, x):
    h = np.asarray(x)
    for layer in params:
        h = _edges_ref(layer, cfg, h).sum(axis=1)
    return h


def _ce_ref(logits, y):
    logits = np.asarray(logits)
    return float(np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(y)), y]))


# ---------------------------------------------------------------- inputs


def _normal(key, shape):
    # one fixed-shape draw, sliced in NumPy: one random program for the whole module
    pool = np.asarray(jax.random.normal(key, (POOL,)))
    return pool[: math.prod(shape)].reshape(shape)


def _uniform(key, shape, lo, hi):
    return lo + (hi - lo) * ndtr(_normal(key, shape))


def _params(key, cfg):
    layers = []
    for i, (d, h) in enumerate(zip(cfg.widths[:-1], cfg.widths[1:], strict=True)):
        kb, kc, ks = jax.random.split(jax.random.fold_in(key, i), 3)
        layers.append(
            kan.KANLayer(
                base_weight=_normal(kb, (h, d)),
                spline_weight=_normal(kc, (h, d, cfg.n_basis)),
                spline_scaler=_uniform(ks, (h, d), 0.5, 1.5),
            )
        )
    return tuple(layers)


def _inputs(key, n=N, d=3):
    # inside [lo, hi) = [-1, 1): the partition of unity holds for every feature
    return _uniform(key, (n, d), -0.99, 0.99)


def _labels(n=N):
    return np.arange(n) % 2


# ---------------------------------------------------------------- jitted jaxfeat


@functools.partial(jax.jit, static_argnames=("cfg", "task"))
def _bundle(params, x, y, cfg, task):
    kw = dict(grids=kan.kan_grids(cfg, dtype=x.dtype), cfg=cfg)
    return dict(
        out=jax.vmap(lambda xi: kan.kan_apply(params, xi, **kw))(x),
        edges=kan.first_layer_edges(params, x, **kw),
        hidden=jax.vmap(lambda xi: kan.kan_layer_inputs(params, xi, **kw))(x),
        l1=kan.kan_l1(params, x, **kw),
        l2=kan.kan_l2(params, x, **kw),
        l1_center=kan.kan_l1(params, x, center=True, **kw),
        l2_center=kan.kan_l2(params, x, center=True, **kw),
        l1_coef=kan.kan_l1(params, x, variant="coef", **kw),
        l2_coef=kan.kan_l2(params, x, variant="coef", **kw),
        si=kan.kan_si(params, x, **kw),
        si_per_class=kan.kan_si(params, x, objective="per_class", **kw),
        ko=kan.kan_ko(params, x, y, task=task, **kw),
        ko_losses=kan.kan_ko_losses(params, x, y, task=task, **kw),
        attr=kan.kan_attr(params, x, **kw),
    )


def _scores(params, x, y, cfg, task="classification"):
    s = jax.tree_util.tree_map(np.asarray, _bundle(params, x, y, cfg, task))
    # kan_ko(clip_negative=False, normalize=False) is L_p - L_0 by definition; it is
    # formed here so that the knock-out is compiled once (tests/kan checks the flags)
    s["ko_raw"] = s["ko_losses"][1] - s["ko_losses"][0]
    return s


@functools.partial(jax.jit, static_argnames=("cfg",))
def _forward(params, x, cfg):
    grids = kan.kan_grids(cfg, dtype=x.dtype)
    return jax.vmap(lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=cfg))(x)


@functools.partial(jax.jit, static_argnames=("orders",))
def _bases(x, grids, orders):
    return tuple(kan.bspline_basis(x, g, k) for g, k in zip(grids, orders, strict=True))


@functools.partial(jax.jit, static_argnames=("order",))
def _spline_and_slope(x, grid, coef, order):
    one = lambda s: kan.spline_values(s[None], grid, coef, order)[0, 0]
    return jax.vmap(one)(x), jax.vmap(jax.grad(one))(x)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _edge_slopes(layer, x, cfg):
    grid = kan.kan_grids(cfg, dtype=x.dtype)[0]
    return jax.jacfwd(lambda v: kan.layer_edges(layer, grid, v, cfg.order))(x)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _l1(params, x, cfg):
    return kan.kan_l1(params, x, grids=kan.kan_grids(cfg, dtype=x.dtype), cfg=cfg)


# ---------------------------------------------------------------- claims


def test_kan_1(key):
    # (a) uniform grids, K = 0..3: every basis function vs SciPy's basis elements on
    # the whole line (inside, the partial intervals at both ends, and outside).
    # Error source: two orderings of non-negative convex combinations; a few ulps.
    orders = (0, 1, 2, 3)
    grids = tuple(np.asarray(kan.uniform_grid(1, 5, k)) for k in orders)
    x = _uniform(key, (200, 1), -3.0, 3.0)  # the K = 3 knots span [-2.2, 2.2]
    for order, t, b in zip(orders, grids, _bases(x, grids, orders), strict=True):
        t, b, xs = t[0], np.asarray(b)[:, 0], x[:, 0]
        np.testing.assert_allclose(b, _basis_ref(t, order, xs), atol=1e-13)
        assert np.all(b >= 0)  # non-negative, exactly
        assert np.all((b > 0).sum(axis=1) <= order + 1)  # local support
        inside = (xs >= t[order]) & (xs < t[-1 - order])
        assert inside.sum() > 20
        np.testing.assert_allclose(b[inside].sum(axis=1), 1.0, atol=1e-14)
        outside = (xs < t[0]) | (xs >= t[-1])
        assert outside.any() and np.all(b[outside] == 0)
        ends = ((xs > t[0]) & (xs < t[order])) | ((xs > t[-1 - order]) & (xs < t[-1]))
        sums = b[ends].sum(axis=1)  # the K extension intervals at each end
        assert np.all((sums > 0) & (sums < 1)) and (ends.any() or order == 0)
    # (b) non-uniform knots with a double knot: SciPy's design matrix on [t_K, t_n].
    t = np.array([-2.0, -1.3, -1.0, -0.2, -0.2, 0.5, 1.1, 1.6, 2.4])
    x = np.linspace(t[3], t[5], 100, endpoint=False)[:, None]  # inside for K <= 3
    orders = (1, 2, 3)
    for order, b in zip(orders, _bases(x, (t[None],) * 3, orders), strict=True):
        ref = BSpline.design_matrix(x[:, 0], t, order).toarray()
        np.testing.assert_allclose(np.asarray(b)[:, 0], ref, atol=1e-13)
        np.testing.assert_allclose(np.asarray(b)[:, 0].sum(axis=1), 1.0, atol=1e-14)
    # (c) hand values (hat functions) for the authors' G = 2, K = 1: knots -2..2.
    xs = np.array([-2.5, -1.5, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0])[:, None]
    (b,) = _bases(xs, (np.asarray(kan.uniform_grid(1, 2, 1)),), (1,))
    np.testing.assert_array_equal(
        np.asarray(b).sum(axis=-1)[:, 0], [0, 0.5, 1, 1, 1, 1, 0.5, 0]
    )


def test_kan_2(key):
    t = KNOTS
    for order in (1, 2, 3):
        n_basis = len(t) - order - 1
        k1, k2 = jax.random.split(jax.random.fold_in(key, order))
        c = _normal(k1, (n_basis,))
        x = _uniform(k2, (N_EVAL,), t[order], t[n_basis])
        val, slope = _spline_and_slope(x, t[None], c[None, None], order)
        # the formula, with SciPy's order-(K - 1) basis and c_{-1} = c_n = 0
        dc = np.diff(np.concatenate([[0.0], c, [0.0]]))  # c_i - c_{i-1}, i = 0..n
        den = t[order : order + n_basis + 1] - t[: n_basis + 1]  # t_{i+K} - t_i
        low = BSpline.design_matrix(x, t, order - 1).toarray()
        formula = order * low @ (dc / den)
        # Error source: rounding in sums of a few O(10) terms (~1e-14 absolute).
        np.testing.assert_allclose(slope, formula, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(
            formula, BSpline(t, c, order).derivative()(x), atol=1e-12
        )
        np.testing.assert_allclose(val, BSpline(t, c, order)(x), atol=1e-13)
        # central differences, h = 1e-6: truncation h^2 |S'''| / 6 <~ 1e-10 away
        # from knots (exact for K = 1), rounding eps |S| / h ~ 1e-10.
        h = 1e-6
        up, _ = _spline_and_slope(x + h, t[None], c[None, None], order)
        down, _ = _spline_and_slope(x - h, t[None], c[None, None], order)
        np.testing.assert_allclose(slope, (up - down) / (2 * h), atol=1e-7)


def test_kan_3():
    # knots 0..6, K = 2, c = (-1, 2, 0, -1). By hand at x = 2.5: B_0 = (3 - 2.5)^2 / 2,
    # B_1 = (-2 u^2 + 6 u - 3) / 2 at u = 1.5, B_2 = 0.5^2 / 2, B_3 = 0. All values are
    # dyadic rationals, so the recursion is exact and the check is equality.
    t = np.arange(7.0)[None]
    c = np.array([-1.0, 2.0, 0.0, -1.0])
    (b,) = _bases(np.array([[2.5]]), (t,), (2,))
    np.testing.assert_array_equal(np.asarray(b)[0, 0], [0.125, 0.75, 0.125, 0.0])
    val, _ = _spline_and_slope(np.array([2.5]), t, c[None, None], 2)
    assert float(val[0]) == 1.375
    assert BSpline(t[0], c, 2)(2.5) == 1.375


def test_kan_4(key):
    # (a) sup_x |sum c_k B_k| <= max |c| <= ||c||_2 <= ||c||_1, with equality in the
    # first step for K = 1 (each hat is 1 at its peak knot, where S = c exactly).
    t = KNOTS
    dense = np.linspace(t[0] - 0.1, t[-1] + 0.1, N_EVAL - len(t))
    xs = np.sort(np.concatenate([dense, t]))  # every knot included
    for order in (1, 2, 3):
        c = _normal(jax.random.fold_in(key, order), (len(t) - order - 1,))
        val, _ = _spline_and_slope(xs, t[None], c[None, None], order)
        sup, cmax = float(np.max(np.abs(val))), float(np.max(np.abs(c)))
        assert sup <= cmax * (1 + 1e-14)  # a convex combination, up to rounding
        assert cmax <= np.linalg.norm(c) <= np.sum(np.abs(c))
        if order == 1:
            assert sup == cmax
    # (b) per edge: |spline part| <= max_k |S C_k| on any data, so the coefficient
    # L1 norm (the text's KAN-L1) majorizes the data-based edge magnitude.
    params = _params(key, ONE)
    x = _inputs(jax.random.fold_in(key, 9))
    lay = params[0]
    z = _edges_ref(lay, ONE, x)
    silu = x / (1 + np.exp(-x))
    spline_part = z - silu[:, :, None] * lay.base_weight.T[None]
    eff = np.abs(lay.spline_weight * lay.spline_scaler[..., None])  # (H, d, nb)
    assert np.all(np.abs(spline_part).max(axis=0) <= eff.max(axis=2).T * (1 + 1e-14))
    coef_l1 = eff.sum(axis=(0, 2))
    assert np.all(np.abs(spline_part).mean(axis=0).sum(axis=1) <= coef_l1)
    s = _scores(params, x, _labels(), ONE)
    np.testing.assert_allclose(s["l1_coef"], coef_l1 / coef_l1.sum(), rtol=1e-12)


def test_kan_5(key):
    params = _params(key, TWO)
    x = _inputs(jax.random.fold_in(key, 1))
    s = _scores(params, x, _labels(), TWO)
    # Error source: SciPy's de Boor evaluation vs Cox–de Boor, O(1) coefficients.
    z_ref = _edges_ref(params[0], TWO, x)
    np.testing.assert_allclose(s["edges"], z_ref, rtol=1e-12, atol=1e-13)
    # the basis-then-matmul layer output equals the sum of the edge outputs
    assert_close(s["hidden"][1], s["edges"].sum(axis=1))
    (basis,) = _bases(x, (_grid_ref(TWO, 3),), (TWO.order,))
    lay = params[0]
    flat = np.asarray(basis).reshape(N, -1)  # (N, d * nb)
    coef = (lay.spline_weight * lay.spline_scaler[..., None]).reshape(4, -1)
    silu = x / (1 + np.exp(-x))
    assert_close(s["hidden"][1], silu @ lay.base_weight.T + flat @ coef.T)
    # the whole network against a dense SciPy forward (hidden values partly outside
    # the second grid: only the SiLU branch and partial bases act there)
    np.testing.assert_allclose(
        s["out"], _forward_ref(params, TWO, x), rtol=1e-12, atol=1e-12
    )


def test_kan_6(key):
    params = _params(key, ONE)
    x = _inputs(jax.random.fold_in(key, 1))
    s = _scores(params, x, _labels(), ONE)
    z = _edges_ref(params[0], ONE, x)
    l1 = np.abs(z).mean(axis=(0, 2))
    l2 = np.sqrt((z**2).mean(axis=(0, 2)))
    np.testing.assert_allclose(s["l1"], l1 / l1.sum(), rtol=1e-12)
    np.testing.assert_allclose(s["l2"], l2 / l2.sum(), rtol=1e-12)
    eff = params[0].spline_weight * params[0].spline_scaler[..., None]
    c2 = np.sqrt((eff**2).sum(axis=(0, 2)))
    np.testing.assert_allclose(s["l2_coef"], c2 / c2.sum(), rtol=1e-12)
    # The text's norms ignore the data: feature 0 has the largest coefficients but
    # its data lies beyond the last knot, where every basis function is 0.
    coef = np.zeros((2, 3, ONE.n_basis))
    coef[:, 0], coef[:, 1] = 5.0, 1.0
    hand = (kan.KANLayer(np.zeros((2, 3)), coef, np.ones((2, 3))),)
    x_far = x.copy()
    x_far[:, 0] = _grid_ref(ONE, 3)[0, -1] + 0.5
    s = _scores(hand, x_far, _labels(), ONE)
    np.testing.assert_array_equal(s["l1"], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(s["l1_coef"], [5 / 6, 1 / 6, 0.0], rtol=1e-15)


def test_kan_7(key):
    params = _params(key, TWO)
    x = _inputs(jax.random.fold_in(key, 1))
    s = _scores(params, x, _labels(), TWO)
    # O = sum_n sum_c |f_c(x_n)| has no cross-sample terms: shifting a whole column
    # by +-h gives every dO/dx_{n,p} at once. h = 1e-6: truncation ~ h^2 |O'''|,
    # rounding ~ eps |O| / h ~ 1e-9 against gradients of size O(1).
    h = 1e-6
    eye = np.eye(3)
    obj = lambda xx: np.abs(np.asarray(_forward(params, xx, TWO))).sum(axis=1)
    grad = np.stack(
        [(obj(x + h * eye[p]) - obj(x - h * eye[p])) / (2 * h) for p in range(3)], 1
    )
    si = np.abs(grad).mean(axis=0)
    np.testing.assert_allclose(s["si"], si / si.sum(), rtol=1e-6)
    # regression: SI = mean_n |d yhat / d x_p| (the sign of yhat drops out)
    sr = _scores(_params(key, REG), x, np.zeros(N), REG, task="regression")
    assert_close(sr["si"], sr["si_per_class"])
    # Not a Sobol index: f_0 = silu(x_0) + 10 + 0.1 silu(x_2) and f_1 = -silu(x_0) +
    # 10 + 0.1 silu(x_2). The class probabilities are a function of x_0 alone
    # (first-order Sobol index 1 for x_0, 0 for x_2), yet the saliency of
    # sum_c |f_c| is exactly 0 for x_0 and all of it goes to x_2.
    base = np.array([[1.0, 0.0, 0.1], [-1.0, 0.0, 0.1]])
    coef = np.zeros((2, 3, ONE.n_basis))
    coef[:, 1] = 10.0  # a constant +10 on [-1, 1) (partition of unity)
    hand = (kan.KANLayer(base, coef, np.ones((2, 3))),)
    s = _scores(hand, x, _labels(), ONE)
    assert s["si"][0] == 0.0
    np.testing.assert_allclose(s["si"], [0.0, 0.0, 1.0], atol=1e-12)
    assert s["si_per_class"][0] > 0.4  # per-class gradients do see x_0
    resampled = x.copy()
    resampled[:, 1:] = _inputs(jax.random.fold_in(key, 2))[:, 1:]  # same x_0
    probs = lambda out: np.exp(out - logsumexp(out, axis=1, keepdims=True))
    p_new = probs(_scores(hand, resampled, _labels(), ONE)["out"])
    np.testing.assert_allclose(p_new, probs(s["out"]), atol=1e-14)
    assert np.std(probs(s["out"])[:, 0]) > 0.05


def test_kan_8(key):
    params = _params(key, TWO)
    x = _inputs(jax.random.fold_in(key, 1))
    y = _labels()
    s = _scores(params, x, y, TWO)
    # knock-out = zero base_weight[:, p], spline_weight[:, p, :], spline_scaler[:, p]
    # of the first layer, run the full network, NumPy cross-entropy
    losses = []
    for p in range(3):
        zeroed = kan.KANLayer(*(a.copy() for a in params[0]))
        for a in zeroed:
            a[:, p] = 0.0
        losses.append(_ce_ref(_forward((zeroed, params[1]), x, TWO), y))
    l0 = _ce_ref(_forward(params, x, TWO), y)
    # Error source: hidden = total - z_p reassociates a sum of three O(1) terms.
    np.testing.assert_allclose(s["ko_losses"][0], l0, rtol=1e-12)
    np.testing.assert_allclose(s["ko_losses"][1], losses, rtol=1e-12)
    np.testing.assert_allclose(s["ko_raw"], np.array(losses) - l0, atol=1e-12)
    delta = np.maximum(np.array(losses) - l0, 0.0)
    assert delta.sum() > 0
    np.testing.assert_allclose(s["ko"], delta / delta.sum(), rtol=1e-10)
    # No knock-out raises the loss, so all scores are 0: every feature adds a
    # constant a_p > 0 to logit 0 and every label is 1.
    coef = np.zeros((2, 3, ONE.n_basis))
    coef[0] = np.array([1.0, 2.0, 0.5])[:, None]
    hand = (kan.KANLayer(np.zeros((2, 3)), coef, np.ones((2, 3))),)
    s = _scores(hand, x, np.ones(N, int), ONE)
    assert np.all(s["ko_raw"] < 0)
    np.testing.assert_array_equal(s["ko"], [0.0, 0.0, 0.0])


def test_kan_9(key):
    params = _params(key, TWO)
    x = _inputs(jax.random.fold_in(key, 1))
    x[:, 1] = 0.0  # a constant column after standardisation
    s = _scores(params, x, _labels(), TWO)
    lay = params[0]
    t1 = _grid_ref(TWO, 3)[1]
    # phi_{q,1}(0) = W_b silu(0) + S sum_k C_k B_k(0) = S sum_k C_k B_k(0)
    b0 = _basis_ref(t1, TWO.order, np.zeros(1))[0]
    phi0 = lay.spline_scaler[:, 1] * (lay.spline_weight[:, 1] @ b0)
    np.testing.assert_allclose(s["edges"][:, 1], np.tile(phi0, (N, 1)), rtol=1e-12)
    assert np.all(np.abs(phi0) > 1e-3)
    for name in ("l1", "l2", "si"):
        assert s[name][1] > 1e-3, name  # the paper's scores: non-zero
    assert s["attr"][1] < 1e-12  # std-based: zero up to the rounding of the mean
    for name in ("l1_center", "l2_center"):
        assert s[name][1] == 0.0, name  # centred: exactly zero
        assert s[name].sum() == pytest.approx(1.0, rel=1e-12)
    # phi'(0) = W_b silu'(0) + S (sum C B)'(0) = W_b / 2 + S (sum C B)'(0): the
    # slope that SI measures at the constant value
    dphi = np.asarray(_edge_slopes(lay, x[0], TWO))  # (d, H, d)
    slopes = [
        BSpline(t1, c, TWO.order).derivative()(0.0) for c in lay.spline_weight[:, 1]
    ]
    ref = lay.base_weight[:, 1] / 2 + lay.spline_scaler[:, 1] * np.array(slopes)
    np.testing.assert_allclose(dphi[1, :, 1], ref, rtol=1e-12)
    # KO of a constant feature in regression: removing the offset c = phi_1(0)
    # raises the mean squared error by c^2 - 2 c mean(yhat - y); with mean-zero
    # residuals (a least-squares optimum in the offset) exactly c^2 > 0.
    reg = _params(key, REG)
    yhat = _scores(reg, x, np.zeros(N), REG, task="regression")["out"][:, 0]
    noise = _normal(jax.random.fold_in(key, 2), (N,))
    y = yhat + noise - noise.mean()
    sr = _scores(reg, x, y, REG, task="regression")
    c = sr["edges"][0, 1, 0]
    np.testing.assert_allclose(sr["ko_raw"][1], c**2, rtol=1e-10)


def test_kan_10(key):
    params = _params(key, TWO)
    x = _inputs(jax.random.fold_in(key, 1))
    # phi_{0,0} += delta and phi_{0,1} -= delta: hidden unit 0, hence the function,
    # is unchanged (partition of unity on [-1, 1)); the edge outputs are not.
    delta = 2.0
    lay = params[0]
    coef = lay.spline_weight.copy()
    coef[0, 0] += delta / lay.spline_scaler[0, 0]
    coef[0, 1] -= delta / lay.spline_scaler[0, 1]
    shifted = (lay._replace(spline_weight=coef), params[1])
    a = _scores(params, x, _labels(), TWO)
    b = _scores(shifted, x, _labels(), TWO)
    # Error source: sum_k B_k = 1 up to rounding, times delta (~1e-15 absolute).
    np.testing.assert_allclose(b["out"], a["out"], atol=1e-12)
    np.testing.assert_allclose(b["attr"], a["attr"], rtol=1e-10)  # shift-invariant
    np.testing.assert_allclose(b["si"], a["si"], rtol=1e-10)  # a function of f only
    for name in ("l1", "l2", "ko_raw"):  # magnitudes and knock-outs move
        assert np.max(np.abs(b[name] - a[name])) > 1e-3, name


def test_kan_11(key):
    n, n_splits = 40, 5
    y = np.arange(n) % 2
    select = kan.kfold_indices(jax.random.key(42), y, n_splits)  # scoring folds
    evaluate = kan.kfold_indices(jax.random.key(0), y, n_splits)  # a different CV
    as_val, as_train = np.zeros(n, int), np.zeros(n, int)
    for tr, va in select:
        as_val[va] += 1
        as_train[tr] += 1
    # every row is validation once and training F - 1 times: the averaged scores
    # are a function of every row, so of every evaluation test fold too
    np.testing.assert_array_equal(as_val, 1)
    np.testing.assert_array_equal(as_train, n_splits - 1)
    # nested: select inside each outer training set; the outer test fold is unseen
    for tr, te in evaluate:
        inner = kan.kfold_indices(jax.random.key(42), y[tr], n_splits - 1)
        seen = set(tr[np.concatenate([np.concatenate(f) for f in inner])].tolist())
        assert seen == set(tr.tolist()) and not seen & set(te.tolist())
    # The same through a score: moving one evaluation-test row changes the paper's
    # fold-averaged KAN-L1 of a fixed network, and never the nested one.
    params = _params(key, ONE)
    x = _inputs(jax.random.fold_in(key, 1), n)
    tr, te = evaluate[0]
    inner = [(tr[a], tr[b]) for a, b in kan.kfold_indices(key, y[tr], n_splits - 1)]
    averaged = lambda xx, folds: np.mean(
        [_l1(params, xx[va], ONE) for _, va in folds], 0
    )
    moved = x.copy()
    moved[te[0]] += 0.5
    assert np.max(np.abs(averaged(moved, select) - averaged(x, select))) > 1e-4
    np.testing.assert_array_equal(averaged(moved, inner), averaged(x, inner))


def test_kan_12(x64):
    # The folded truncated-power form against the textbook cubic B-spline, written
    # independently: N_3 = (4 - 6r^2 + 3r^3)/6 for r = |s - 2| < 1, (2 - r)^3/6 for
    # 1 <= r < 2, 0 beyond.
    grid = kan.uniform_grid(1, 6, 3, (-1.5, 2.0))  # t_0 = -2.375, h = 0.583...
    x = np.linspace(-3.0, 3.0, 601)[:, None]
    got = np.asarray(kan.bspline_basis(x, grid, 3, method="uniform"))[:, 0]
    t0, h = float(grid[0, 0]), float(grid[0, 1] - grid[0, 0])
    s = (x - t0) / h - np.arange(got.shape[-1])
    r = np.abs(s - 2.0)
    want = np.where(
        r < 1, (4 - 6 * r**2 + 3 * r**3) / 6, np.clip(2 - r, 0, None) ** 3 / 6
    )
    np.testing.assert_allclose(got, want, atol=1e-13)
    # ...and equal to the Cox-de Boor recursion for every order up to 6.
    for order in range(7):
        g = kan.uniform_grid(1, 5, order, (0.0, 1.0))
        xs = np.linspace(-0.5, 1.5, 257)[:, None]
        fast = kan.bspline_basis(xs, g, order, method="uniform")
        ref = kan.bspline_basis(xs, g, order)
        np.testing.assert_allclose(fast, ref, atol=1e-11)
