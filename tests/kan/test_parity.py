"""Optional parity with the reference KAN libraries (skipped when they are missing).

- jaxkan 0.3.7 `SplineLayer(add_bias=False)` is the efficient-kan formulation: the
  same forward pass given `c_basis <- spline_weight`, `c_spl <- spline_scaler`,
  `c_res <- base_weight` and the same knots in `layer.grid.item` (spec §3.5, §5.3).
- pykan 0.2.8 `MultKAN` stores everything input-major: `coef[p, q, k]`,
  `scale_base[p, q]`, `scale_sp[p, q]`; its forward pass and `feature_score`
  (`attribute()`) must match `kan_apply` and `kan_attr` (spec §1.5, §5.4).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import kan

# (G, K): the pykan/efficient-kan default and the selector paper's hat basis.
GRIDS = [(5, 3), (2, 1)]
# Bounds relative to the output scale max(1, max|y|): the outputs here reach |y| ~ 8,
# where one float32 ulp is 4.8e-7, and jaxfeat and jaxkan each sit ~2 ulps from the
# float64 value (they sum in different orders), so an absolute 1e-6 would test
# rounding. float64 leaves ~1e4 ulps for the reordered sums.
TOL = {
    "float32": dict(fwd=1e-6, pykan=1e-5, attr=1e-5),
    "float64": dict(fwd=1e-12, pykan=1e-12, attr=1e-10),
}


def _params(cfg, seed):
    """Non-trivial parameters: random scales, coefficients far from the init noise."""
    params = kan.init_kan(jax.random.key(seed), cfg)
    out = []
    for i, lay in enumerate(params):
        k = jax.random.fold_in(jax.random.key(seed + 100), i)
        ks, kc = jax.random.split(k)
        scaler = jax.random.uniform(ks, lay.spline_scaler.shape, minval=0.5, maxval=1.5)
        coef = jax.random.normal(kc, lay.spline_weight.shape)
        out.append(kan.KANLayer(3 * lay.base_weight, coef, scaler))
    return tuple(out)


def _inputs(d, n, seed, half_width):
    """Uniform inputs inside and outside the grid (almost surely off the knots)."""
    key = jax.random.key(seed)
    return jax.random.uniform(key, (n, d), minval=-half_width, maxval=half_width)


def _apply(params, grids, cfg, x):
    f = lambda xi: kan.kan_apply(params, xi, grids=grids, cfg=cfg)
    return np.asarray(jax.vmap(f)(x))


# --- jaxkan SplineLayer ---------------------------------------------------------
def _jaxkan_forward(layer, grid, x, cfg):
    """jaxkan's output with jaxfeat's parameters and knots, and jaxkan's own knots."""
    nnx = pytest.importorskip("flax.nnx")
    layers = pytest.importorskip("jaxkan.layers")
    d, h = cfg.widths
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = layers.SplineLayer(
            n_in=d,
            n_out=h,
            k=cfg.order,
            G=cfg.grid_size,
            grid_range=cfg.grid_range,
            add_bias=False,
            seed=0,
        )
    own_grid = np.asarray(ref.grid.item)
    # jaxkan keeps its grid in a plain Python attribute and the params in nnx.Param.
    ref.grid.item = jnp.asarray(grid)
    ref.c_basis = nnx.Param(jnp.asarray(layer.spline_weight))
    ref.c_spl = nnx.Param(jnp.asarray(layer.spline_scaler))
    ref.c_res = nnx.Param(jnp.asarray(layer.base_weight))
    # jaxkan broadcasts (N, d, 1) against (d, M) implicitly; the suite raises on that.
    with jax.numpy_rank_promotion("allow"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(ref(jnp.asarray(x))), own_grid


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("grid_size", "order"), GRIDS)
def test_layer_matches_jaxkan_spline_layer(request, dtype, grid_size, order):
    pytest.importorskip("jaxkan")
    if dtype == "float64":
        request.getfixturevalue("x64")
    cfg = kan.KANConfig(widths=(7, 6), grid_size=grid_size, order=order)
    params = _params(cfg, seed=grid_size)
    grids = kan.kan_grids(cfg)
    x = _inputs(7, 200, seed=order, half_width=2.5)  # the grids end at +-2.2 / +-2
    assert x.dtype == dtype and grids[0].dtype == dtype
    want, own_grid = _jaxkan_forward(params[0], grids[0], x, cfg)
    got = _apply(params, grids, cfg, x)
    assert want.dtype == got.dtype == dtype
    err = np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want)))
    assert err <= TOL[dtype]["fwd"], err
    # and jaxfeat's knots are jaxkan's own (which jaxkan builds in float32)
    np.testing.assert_allclose(own_grid, grids[0], rtol=0, atol=1e-6)


# --- pykan MultKAN ------------------------------------------------------------------
def _pykan_model(params, grids, cfg, torch_dtype):
    torch = pytest.importorskip("torch")
    kan_ref = pytest.importorskip("kan")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = kan_ref.MultKAN(
                width=list(cfg.widths),
                grid=cfg.grid_size,
                k=cfg.order,
                grid_range=list(cfg.grid_range),
                symbolic_enabled=False,
                auto_save=False,
                seed=0,
            )
    finally:
        torch.set_default_dtype(default)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch_dtype)
    with torch.no_grad():
        for act, lay, grid in zip(model.act_fun, params, grids, strict=True):
            act.grid.data = t(grid)
            act.coef.data = t(np.transpose(np.asarray(lay.spline_weight), (1, 0, 2)))
            act.scale_base.data = t(np.asarray(lay.base_weight).T)
            act.scale_sp.data = t(np.asarray(lay.spline_scaler).T)
            act.mask.data = torch.ones_like(act.mask.data)
    return model


@pytest.mark.parametrize(("grid_size", "order"), GRIDS)
def test_network_and_attribution_match_pykan(tmp_path, monkeypatch, grid_size, order):
    torch = pytest.importorskip("torch")
    pytest.importorskip("kan")
    monkeypatch.chdir(tmp_path)  # pykan writes ./model/ checkpoints if asked to
    cfg = kan.KANConfig(widths=(5, 7, 3), grid_size=grid_size, order=order)
    params = _params(cfg, seed=10 + grid_size)
    grids = kan.kan_grids(cfg)
    x = _inputs(5, 300, seed=order, half_width=1.8)
    model = _pykan_model(params, grids, cfg, torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = model(torch.tensor(np.asarray(x))).detach().numpy()
        model.attribute()
        score = model.feature_score.detach().numpy()
    got = _apply(params, grids, cfg, x)
    err = np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want)))
    assert err <= TOL["float32"]["pykan"], err
    score = score / score.sum()
    attr = np.asarray(kan.kan_attr(params, x, grids=grids, cfg=cfg))
    rel = np.max(np.abs(attr - score) / score)
    assert rel <= TOL["float32"]["attr"], rel
    np.testing.assert_allclose(attr.sum(), 1.0, rtol=1e-6)


@pytest.mark.parametrize(("grid_size", "order"), GRIDS)
def test_network_and_attribution_match_pykan_float64(
    x64, tmp_path, monkeypatch, grid_size, order
):
    torch = pytest.importorskip("torch")
    pytest.importorskip("kan")
    monkeypatch.chdir(tmp_path)
    cfg = kan.KANConfig(widths=(5, 7, 3), grid_size=grid_size, order=order)
    params = _params(cfg, seed=20 + grid_size)
    grids = kan.kan_grids(cfg)
    x = _inputs(5, 300, seed=order + 1, half_width=1.8)
    assert x.dtype == jnp.float64
    model = _pykan_model(params, grids, cfg, torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = model(torch.tensor(np.asarray(x))).detach().numpy()
        model.attribute()
        score = model.feature_score.detach().numpy()
    got = _apply(params, grids, cfg, x)
    err = np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want)))
    assert err <= TOL["float64"]["pykan"], err
    attr = np.asarray(kan.kan_attr(params, x, grids=grids, cfg=cfg))
    rtol = TOL["float64"]["attr"]
    np.testing.assert_allclose(attr, score / score.sum(), rtol=rtol, atol=0)
