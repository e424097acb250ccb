r"""Spline-based feature-importance scores of a trained KAN (KAN-L1/L2/SI/KO/ATTR).

Definitions follow the authors' released code (Akazan & Mbingui 2025,
arXiv:2509.23366; `../shared/papers/kan.md` §1.2), the default `variant="paper"`.
With `z[n, p, q] = phi_{q,p}(x_{n,p})` the first layer's edge outputs on data `x`:

| score | `"paper"` definition | `center=True` |
|---|---|---|
| `kan_l1` | `mean_{n,q} |z|` | `mean_q std_n z` |
| `kan_l2` | `sqrt(mean_{n,q} z^2)` | `sqrt(mean_q var_n z)` |
| `kan_si` | `mean_n |d/dx_p sum_c |f_c(x_n)||` | — |
| `kan_ko` | `max(0, L(first-layer edges of p zeroed) - L)` | — |
| `kan_attr` | pykan's `attribute()`/`feature_score` (std-based, shift invariant) | — |

`variant="coef"` gives the paper text's coefficient norms of the effective first-layer
coefficients `S_{q,p} C_{q,p,k}` (`kan_l1`: sum of |.|; `kan_l2`: Euclidean norm),
optionally adding the base weights. Every score is non-negative and normalised to sum
to 1, or all zeros when every raw score is 0: KO when no knock-out raises the loss
(as in the authors' code), and the centred and attribution scores when x has no
spread (every row the same).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from jaxfeat._src import checks
from jaxfeat._src.arrays import as_float
from jaxfeat.kan._model import (
    KANConfig,
    _check_net,
    _layer_apply,
    kan_apply,
    kan_layer_inputs,
    layer_edges,
)
from jaxfeat.kan._train import _TASKS, _check_labels, _weighted_loss

_VARIANTS = ("paper", "coef")
_SI_OBJECTIVES = ("sum_abs_logits", "per_class")
_EPS = 1e-12


def _normalize(s):
    return s / jnp.maximum(jnp.sum(s), _EPS)


def _check_x(x, cfg, params, grids, min_n=1, why=""):
    # x (N, d) with N >= min_n, and the network (shapes, uniform grids) checked
    # eagerly: inside the jitted scorers the grids are traced and not checked.
    # Returns x with integer samples as floats (SiLU and KAN-SI's gradient).
    checks.check_ndim("x", x, 2, "(N, d)")
    if np.shape(x)[1] != cfg.widths[0]:
        raise ValueError(
            f"x: expected {cfg.widths[0]} features to match cfg.widths; "
            f"got {np.shape(x)[1]}"
        )
    if np.shape(x)[0] < min_n:
        raise ValueError(
            f"x: expected at least {min_n} samples{why}; got {np.shape(x)[0]}"
        )
    checks.check_finite("x", x)
    _check_net(params, grids, cfg)
    return as_float(x, non_float=params[0].spline_weight.dtype)


def first_layer_edges(params, x: ArrayLike, *, grids, cfg: KANConfig) -> jax.Array:
    """`z[n, p, q] = phi_{q,p}(x_{n,p})` of the first layer, shape `(N, d, H)`."""
    x = _check_x(x, cfg, params, grids, min_n=0)
    return _edges(params, x, grids, cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _edges(params, x, grids, cfg):
    return jax.vmap(
        lambda xi: layer_edges(params[0], grids[0], xi, cfg.order, cfg.basis)
    )(x)


def _magnitude(params, x, grids, cfg, variant, center, include_base, power):
    checks.check_choice("variant", variant, _VARIANTS)
    if variant == "paper":
        if center:
            x = _check_x(x, cfg, params, grids, 2, " (a spread over samples)")
        else:
            x = _check_x(x, cfg, params, grids)
    else:
        if center:
            raise ValueError(
                "center: applies to variant='paper' (a spread over samples); "
                "variant='coef' scores coefficients, not samples"
            )
        _check_net(params, grids, cfg)
    if include_base and variant != "coef":
        raise ValueError("include_base: applies to variant='coef' only")
    return _magnitude_core(params, x, grids, cfg, variant, center, include_base, power)


@functools.partial(
    jax.jit, static_argnames=("cfg", "variant", "center", "include_base", "power")
)
def _magnitude_core(params, x, grids, cfg, variant, center, include_base, power):
    if variant == "coef":
        lay = params[0]
        coef = jnp.abs(lay.spline_weight * lay.spline_scaler[..., None])  # (H, d, nb)
        if power == 1:
            s = jnp.sum(coef, axis=(0, 2))
            base = jnp.sum(jnp.abs(lay.base_weight), axis=0)
        else:
            s = jnp.sqrt(jnp.sum(coef**2, axis=(0, 2)))
            base = jnp.sqrt(jnp.sum(lay.base_weight**2, axis=0))
        return _normalize(s + base if include_base else s)
    z = _edges(params, x, grids, cfg)
    if center:
        # Shift by the first sample first: a constant column then gives exact zeros.
        dev = z - z[:1]
        dev = dev - jnp.mean(dev, axis=0, keepdims=True)
        if power == 1:
            s = jnp.mean(jnp.sqrt(jnp.mean(dev**2, axis=0)), axis=1)
        else:
            s = jnp.sqrt(jnp.mean(dev**2, axis=(0, 2)))
    elif power == 1:
        s = jnp.mean(jnp.abs(z), axis=(0, 2))
    else:
        s = jnp.sqrt(jnp.mean(z**2, axis=(0, 2)))
    return _normalize(s)


def kan_l1(
    params,
    x: ArrayLike,
    *,
    grids,
    cfg: KANConfig,
    variant: str = "paper",
    center: bool = False,
    include_base: bool = False,
) -> jax.Array:
    """KAN-L1: mean absolute first-layer edge output per input feature (module table).

    Args:
      params: a trained network's parameters.
      x: `(N, d)` validation inputs (ignored by `variant="coef"`).
      grids: the network's grids.
      cfg: the architecture.
      variant: `"paper"` (the authors' code) or `"coef"` (coefficient L1 norm).
      center: `"paper"` only: use the per-edge standard deviation over `x`
        (constant features get 0).
      include_base: `"coef"` only: add the base-weight norm.

    Returns:
      `(d,)` non-negative scores summing to 1 (or all 0, see the module doc).

    Raises:
      ValueError: shapes that do not match `cfg`, no samples (fewer than 2 with
        `center=True`), a concrete `x` with NaN or infinity, a concrete
        non-uniform grid with `cfg.basis="uniform"`, or `center` / `include_base`
        with the variant they do not apply to.
    """
    return _magnitude(params, x, grids, cfg, variant, center, include_base, 1)


def kan_l2(
    params,
    x: ArrayLike,
    *,
    grids,
    cfg: KANConfig,
    variant: str = "paper",
    center: bool = False,
    include_base: bool = False,
) -> jax.Array:
    """KAN-L2: root-mean-square first-layer edge output per feature (module table).

    Arguments and return value as `kan_l1`.
    """
    return _magnitude(params, x, grids, cfg, variant, center, include_base, 2)


def kan_si(
    params,
    x: ArrayLike,
    *,
    grids,
    cfg: KANConfig,
    objective: str = "sum_abs_logits",
) -> jax.Array:
    """KAN-SI: input-gradient saliency, averaged over the samples.

    `"sum_abs_logits"` (the authors' code): `mean_n |d O / d x_{n,p}|` with
    `O = sum_{n,c} |f_c(x_n)|`; `"per_class"`: `mean_{n,c} |d f_c(x_n) / d x_p|`. The
    objective has no cross-sample terms, so both are per-sample gradients.

    Returns:
      `(d,)` non-negative scores summing to 1 (or all 0, see the module doc).

    Raises:
      ValueError: as `kan_l1`.
    """
    x = _check_x(x, cfg, params, grids)
    checks.check_choice("objective", objective, _SI_OBJECTIVES)
    return _si(params, x, grids, cfg, objective)


@functools.partial(jax.jit, static_argnames=("cfg", "objective"))
def _si(params, x, grids, cfg, objective):
    f = lambda xi: kan_apply(params, xi, grids=grids, cfg=cfg)
    if objective == "sum_abs_logits":
        g = jax.vmap(jax.grad(lambda xi: jnp.sum(jnp.abs(f(xi)))))(x)
        s = jnp.mean(jnp.abs(g), axis=0)
    else:
        jac = jax.vmap(jax.jacrev(f))(x)  # (N, C, d)
        s = jnp.mean(jnp.abs(jac), axis=(0, 1))
    return _normalize(s)


def kan_ko_losses(
    params, x: ArrayLike, y: ArrayLike, *, grids, cfg: KANConfig, task: str
) -> tuple[jax.Array, jax.Array]:
    """Losses with each feature knocked out: `(L0, L)` with `L` `(d,)`.

    Knocking out feature `p` zeroes `base_weight[:, p]`, `spline_weight[:, p, :]` and
    `spline_scaler[:, p]` of the first layer (`phi_{., p} = 0`). Computed from the
    first layer's edge outputs once: hidden = total - edges of p, and the `d`
    knocked-out heads run one after another (`lax.map`, bounding memory to one
    `(N, H)` hidden batch at a time).

    Raises:
      ValueError: shapes that do not match `cfg`, a regression `cfg` with more than
        one output; for concrete arrays, NaN or infinity in `x` or `y`, labels
        outside `[0, C)`.
      TypeError: non-integer labels for classification.
    """
    x = _check_x(x, cfg, params, grids)
    checks.check_choice("task", task, _TASKS)
    if np.shape(y) != (np.shape(x)[0],):
        raise ValueError(f"y: expected shape ({np.shape(x)[0]},); got {np.shape(y)}")
    if task == "regression" and cfg.widths[-1] != 1:
        raise ValueError(
            f"cfg.widths: regression needs one output; got {cfg.widths[-1]}"
        )
    _check_labels(y, task, cfg.widths[-1])
    return _ko_losses(params, x, jnp.asarray(y), grids, cfg, task)


@functools.partial(jax.jit, static_argnames=("cfg", "task"))
def _ko_losses(params, x, y, grids, cfg, task):
    z = _edges(params, x, grids, cfg)  # (N, d, H)
    total = jnp.sum(z, axis=1)

    def head(h):  # (N, H) -> loss
        for layer, grid in zip(params[1:], grids[1:], strict=True):
            h = jax.vmap(
                lambda hi, lay=layer, g=grid: _layer_apply(
                    lay, g, hi, cfg.order, cfg.basis
                )
            )(h)
        return _weighted_loss(h, y, task)

    base = head(total)
    knocked = jax.lax.map(lambda zp: head(total - zp), jnp.swapaxes(z, 0, 1))
    return base, knocked


def kan_ko(
    params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    grids,
    cfg: KANConfig,
    task: str,
    clip_negative: bool = True,
    normalize: bool = True,
) -> jax.Array:
    """KAN-KO: validation-loss increase when a feature's first-layer edges are zeroed.

    Args:
      params: a trained network's parameters.
      x: `(N, d)` validation inputs.
      y: `(N,)` labels or raw targets.
      grids: the network's grids.
      cfg: the architecture.
      task: `"classification"` (mean cross-entropy) or `"regression"` (mean squared
        error).
      clip_negative: clip decreases to 0 (the authors' `max(0, L_p - L_0)`).
      normalize: divide by the sum when it is positive (all zeros otherwise).

    Returns:
      `(d,)` scores.

    Raises:
      ValueError: as `kan_ko_losses`, and when concrete losses are NaN or infinite
        (a score of zeros would hide them).
    """
    base, knocked = kan_ko_losses(params, x, y, grids=grids, cfg=cfg, task=task)
    if checks.is_concrete((base, knocked)) and not (
        np.isfinite(base) and np.all(np.isfinite(knocked))
    ):
        raise ValueError(
            f"y: the knock-out losses are not finite (base {float(base)!r}); check "
            "the labels or targets and the trained parameters"
        )
    delta = knocked - base
    if clip_negative:
        delta = jnp.maximum(delta, 0.0)
    if normalize:
        tot = jnp.sum(delta)
        delta = jnp.where(tot > 0, delta / jnp.where(tot > 0, tot, 1.0), 0.0)
    return delta


def kan_attr(params, x: ArrayLike, *, grids, cfg: KANConfig) -> jax.Array:
    """Pykan's attribution score (`MultKAN.attribute`, `feature_score`), normalised.

    With `a^l_{q,p}` the standard deviation over `x` (ddof = 1) of edge `(q, p)` of
    layer `l` and `s^l_q` that of the layer's output `q`, node scores start at the
    identity on the outputs and flow back as
    `score^{l}[c, p] = sum_q a^l_{q,p} score^{l+1}[c, q] / (s^l_q + 1e-4)`; the
    feature score is the mean over outputs `c` of the input-layer scores.

    Returns:
      `(d,)` non-negative scores summing to 1 (or all 0, see the module doc).

    Raises:
      ValueError: shapes that do not match `cfg`, fewer than 2 samples (the
        standard deviations use ddof = 1), a concrete `x` with NaN or infinity.
    """
    x = _check_x(x, cfg, params, grids, 2, " (standard deviations with ddof = 1)")
    return _attr(params, x, grids, cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _attr(params, x, grids, cfg):
    inputs = jax.vmap(lambda xi: kan_layer_inputs(params, xi, grids=grids, cfg=cfg))(x)
    node = jnp.eye(cfg.widths[-1], dtype=x.dtype)  # (C, H_L)
    for layer, grid, h in reversed(list(zip(params, grids, inputs, strict=True))):
        edges = jax.vmap(
            lambda hi, lay=layer, g=grid: layer_edges(lay, g, hi, cfg.order, cfg.basis)
        )(h)  # (N, d_l, H_l)
        a = jnp.std(edges, axis=0, ddof=1)  # (d_l, H_l)
        s = jnp.std(jnp.sum(edges, axis=1), axis=0, ddof=1)  # (H_l,)
        node = jnp.einsum("pq,cq->cp", a, node / (s[None] + 1e-4))
    return _normalize(jnp.mean(node, axis=0))
