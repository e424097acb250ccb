r"""Training KANs with optax: losses, the sample-based regulariser, minibatch Adam.

The regulariser of Liu et al. (2024, arXiv:2404.19756, eq. 2.17–2.20) uses each edge's
mean absolute output on the batch, `|phi_{q,p}|_1 = mean_n |phi_{q,p}(x_{n,p})|`:

$$\ell_\mathrm{reg} = \lambda\Big(\mu_1 \sum_l |\Phi_l|_1
                              + \mu_2 \sum_l S(\Phi_l)\Big),\qquad
|\Phi|_1 = \sum_{q,p} |\phi_{q,p}|_1,$$
$$S(\Phi) = -\sum_{q,p} \pi_{q,p} \log \pi_{q,p},\quad
\pi_{q,p} = |\phi_{q,p}|_1 / |\Phi|_1.$$

`train_kan` runs `epochs` passes of shuffled minibatches (the last partial batch is
kept, padded with zero-weight rows) inside one `lax.scan`; it is a pure function of
its key, so `jax.vmap` over keys, folds (per-sample weights) or both trains many
networks in one program.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import ArrayLike

from jaxfeat._src import checks
from jaxfeat._src.arrays import as_float
from jaxfeat.kan._model import (
    KANConfig,
    _apply_from_features,
    _check_net,
    _first_layer_features,
    kan_layer_inputs,
    layer_edges,
)

_TASKS = ("classification", "regression")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KANTrainConfig:
    """Minibatch Adam training (defaults: the selector paper's protocol).

    Attributes:
      task: `"classification"` (cross-entropy on integer labels, one logit per class)
        or `"regression"` (mean squared error on a single output).
      epochs: passes over the data.
      batch_size: minibatch size (the last partial batch is kept).
      learning_rate: Adam step size.
      reg_lambda: weight of the sample-based regulariser (0 = off, the paper).
      reg_l1: `mu_1`, weight of the L1 term inside the regulariser.
      reg_entropy: `mu_2`, weight of the entropy term.
    """

    task: str = "classification"
    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 1e-3
    reg_lambda: float = 0.0
    reg_l1: float = 1.0
    reg_entropy: float = 2.0

    def __post_init__(self):
        checks.check_choice("task", self.task, _TASKS)
        checks.check_count("epochs", self.epochs, 1)
        checks.check_count("batch_size", self.batch_size, 1)
        checks.check_positive("learning_rate", self.learning_rate)
        for name in ("reg_lambda", "reg_l1", "reg_entropy"):
            checks.check_positive(name, getattr(self, name), strict=False)


def _check_labels(y, task, n_out, out_name="cfg.widths") -> None:
    """Classification: integer labels in `[0, n_out)`; regression: finite targets.

    Dtypes are checked at trace time, values only when `y` is concrete.
    """
    if task == "classification":
        if n_out < 2:
            # softmax over one logit is 1: zero loss and zero gradient, nothing trains
            raise ValueError(
                f"{out_name}: classification needs at least 2 outputs (the softmax "
                f"of one logit is constant, so loss and gradient are 0); got {n_out}"
            )
        # a list has no dtype for jnp.result_type: NumPy's (int64 for int lists)
        dtype = jnp.result_type(y) if hasattr(y, "dtype") else np.asarray(y).dtype
        if not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(
                f"y: expected integer class labels for classification; got dtype "
                f"{dtype}"
            )
        checks.check_in_range("y", y, 0.0, float(n_out - 1), closed=(True, True))
    else:
        checks.check_finite("y", y)


def _check_weights(weights, n) -> None:
    if np.shape(weights) != (n,):
        raise ValueError(f"weights: expected shape ({n},); got {np.shape(weights)}")
    checks.check_positive("weights", weights, strict=False)


def kan_loss(outputs: ArrayLike, y: ArrayLike, task: str, weights=None) -> jax.Array:
    r"""Weighted mean loss of a batch of outputs.

    With weights, $\sum_n w_n \ell_n / \sum_n w_n$ (0 when every weight is 0).

    Args:
      outputs: `(N, C)` logits (classification) or `(N, 1)` outputs (regression).
      y: `(N,)` integer labels in `[0, C)` or raw targets.
      task: `"classification"` (cross-entropy) or `"regression"` (squared error).
      weights: optional `(N,)` non-negative per-sample weights.

    Raises:
      ValueError: shapes that do not match, one output for classification; for
        concrete arrays, labels outside
        `[0, C)`, NaN or infinite targets, negative or non-finite weights.
      TypeError: non-integer labels for classification.
    """
    checks.check_choice("task", task, _TASKS)
    checks.check_ndim("outputs", outputs, 2, "(N, C)")
    n, n_out = np.shape(outputs)
    if task == "regression" and n_out != 1:
        raise ValueError(
            f"outputs: expected shape ({n}, 1) for regression; got {np.shape(outputs)}"
        )
    if np.shape(y) != (n,):
        raise ValueError(f"y: expected shape ({n},); got {np.shape(y)}")
    _check_labels(y, task, n_out, "outputs")
    if weights is not None:
        _check_weights(weights, n)
        weights = jnp.asarray(weights)
    return _weighted_loss(outputs, jnp.asarray(y), task, weights)


def _weighted_loss(outputs, y, task, weights=None):
    # kan_loss without the checks (traced callers have checked shapes already)
    if task == "classification":
        per = optax.softmax_cross_entropy_with_integer_labels(outputs, y)
    else:
        per = jnp.square(outputs[:, 0] - y)
    if weights is None:
        return jnp.mean(per)
    tot = jnp.sum(weights)
    # the inner where keeps the gradient finite when every weight is 0
    return jnp.where(tot > 0, jnp.sum(weights * per) / jnp.where(tot > 0, tot, 1), 0.0)


def kan_regularization(
    params,
    x: ArrayLike,
    *,
    grids,
    cfg: KANConfig,
    l1: float = 1.0,
    entropy: float = 2.0,
    weights: ArrayLike | None = None,
) -> jax.Array:
    """The sample-based L1 + entropy regulariser (module docstring) on a batch.

    Args:
      params: the network's parameters.
      x: `(N, d)` batch.
      grids: the network's grids.
      cfg: the architecture.
      l1: `mu_1 >= 0`.
      entropy: `mu_2 >= 0`.
      weights: optional `(N,)` non-negative per-sample weights: the edge magnitudes
        are the weighted means `sum_n w_n |phi(x_n)| / sum_n w_n` (0 when every
        weight is 0), so a weight of 0 removes a row, as in `kan_loss`.

    Raises:
      ValueError: shapes that do not match `cfg`, a concrete `x` with NaN or
        infinity, negative (concrete) `l1` or `entropy`, negative or non-finite
        weights.
    """
    checks.check_ndim("x", x, 2, "(N, d)")
    if np.shape(x)[1] != cfg.widths[0]:
        raise ValueError(f"x: expected {cfg.widths[0]} features; got {np.shape(x)[1]}")
    _check_not_empty(x)
    checks.check_finite("x", x)
    _check_net(params, grids, cfg)
    checks.check_positive("l1", l1, strict=False)
    checks.check_positive("entropy", entropy, strict=False)
    if weights is not None:
        _check_weights(weights, np.shape(x)[0])
    x = as_float(x, non_float=params[0].spline_weight.dtype)
    return _regularization(params, x, grids, cfg, l1, entropy, weights)


@jax.jit(static_argnames=("cfg",))
def _regularization(params, x, grids, cfg, l1, entropy, weights=None):
    inputs = jax.vmap(lambda xi: kan_layer_inputs(params, xi, grids=grids, cfg=cfg))(x)
    total = jnp.zeros((), x.dtype)
    if weights is None:
        weights = jnp.ones(x.shape[:1], x.dtype)
    weights = jnp.asarray(weights, x.dtype)
    tot = jnp.sum(weights)
    share = weights / jnp.where(tot > 0, tot, 1)  # weighted mean; all 0 -> 0
    for layer, grid, h in zip(params, grids, inputs, strict=True):
        edges = jax.vmap(
            lambda hi, lay=layer, g=grid: layer_edges(lay, g, hi, cfg.order, cfg.basis)
        )(h)
        mag = jnp.tensordot(share, jnp.abs(edges), axes=1)  # (d, H)
        norm = jnp.sum(mag)
        p = mag / jnp.maximum(norm, 1e-12)
        ent = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
        total = total + l1 * norm + entropy * ent
    return total


def _check_not_empty(x):
    if np.shape(x)[0] == 0:
        raise ValueError(f"x: expected at least 1 sample; got shape {np.shape(x)}")


def _check_data(x, y, weights, cfg, tcfg):
    checks.check_ndim("x", x, 2, "(N, d)")
    _check_not_empty(x)
    n, d = np.shape(x)
    if d != cfg.widths[0]:
        raise ValueError(f"x: expected {cfg.widths[0]} features; got {d}")
    if np.shape(y) != (n,):
        raise ValueError(f"y: expected shape ({n},); got {np.shape(y)}")
    if weights is not None:
        _check_weights(weights, n)
    if tcfg.task == "regression" and cfg.widths[-1] != 1:
        raise ValueError(
            f"cfg.widths: regression needs one output; got {cfg.widths[-1]}"
        )
    checks.check_finite("x", x)
    _check_labels(y, tcfg.task, cfg.widths[-1])


def train_kan(
    key: ArrayLike,
    params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    grids,
    cfg: KANConfig,
    train_cfg: KANTrainConfig,
    weights: ArrayLike | None = None,
):
    """Trains a KAN with minibatch Adam; pure in `key`, so vmappable over runs.

    Args:
      key: PRNG key for the minibatch shuffles.
      params: initial parameters (`init_kan`).
      x: `(N, d)` inputs.
      y: `(N,)` integer labels (classification) or targets (regression).
      grids: the network's grids (not trained).
      cfg: the architecture.
      train_cfg: the optimisation settings.
      weights: optional `(N,)` non-negative per-sample weights (0 removes a row from
        the loss; it still occupies a minibatch slot, so heavy padding shrinks the
        effective batch). Used to train cross-validation folds of unequal size in
        one `vmap`. Each minibatch's loss is its weighted mean; a minibatch whose
        weights are all 0 is skipped (no Adam step, whose momentum would move
        the parameters, and no count in the epoch loss).

    Returns:
      `(params, epoch_losses)` with `epoch_losses` `(epochs,)`: the mean training
      loss of each epoch's minibatches of positive weight (without the
      regulariser; 0 if there are none).

    Raises:
      ValueError: shapes that do not match `cfg`, a regression `cfg` with more than
        one output; for concrete arrays, NaN or infinity in `x` or `y`, labels
        outside `[0, C)`, negative or non-finite weights.
      TypeError: non-integer labels for classification.
    """
    _check_data(x, y, weights, cfg, train_cfg)
    _check_net(params, grids, cfg)
    x = as_float(x, non_float=params[0].spline_weight.dtype)
    if weights is not None:
        weights = jnp.asarray(weights)  # a list has no .astype
    return _train(key, params, x, jnp.asarray(y), grids, weights, cfg, train_cfg)


# Largest first-layer feature table (N * d * (G + K + 1) floats) precomputed before the
# training loop; beyond it the features are recomputed every step to bound memory.
_HOIST_ELEMENTS = 1 << 25


@jax.jit(static_argnames=("cfg", "tcfg"))
def _train(key, params, x, y, grids, weights, cfg, tcfg):
    n = x.shape[0]
    bs = min(tcfg.batch_size, n)
    n_batches = -(-n // bs)
    pad = n_batches * bs - n
    w = jnp.ones((n,), x.dtype) if weights is None else weights.astype(x.dtype)
    opt = optax.adam(tcfg.learning_rate)
    features = jax.vmap(lambda xi: _first_layer_features(xi, grids[0], cfg))
    # The first layer's basis depends on the data only: computed once, not per step.
    hoist = n * x.shape[1] * (cfg.n_basis + 1) <= _HOIST_ELEMENTS
    table = features(x) if hoist else None
    apply = jax.vmap(
        lambda p, v, s: _apply_from_features(p, v, s, grids, cfg), (None, 0, 0)
    )

    def loss_fn(p, sel, wb):
        xb = x[sel]
        values, silu_x = (
            jax.tree_util.tree_map(lambda a: a[sel], table) if hoist else features(xb)
        )
        loss = _weighted_loss(apply(p, values, silu_x), y[sel], tcfg.task, wb)
        if tcfg.reg_lambda:
            reg = _regularization(p, xb, grids, cfg, tcfg.reg_l1, tcfg.reg_entropy, wb)
            return loss + tcfg.reg_lambda * reg, loss
        return loss, loss

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def step(carry, idx):
        p, s = carry
        wb = jnp.where(idx < n, w[jnp.minimum(idx, n - 1)], 0.0)
        sel = jnp.minimum(idx, n - 1)
        g, loss = grad_fn(p, sel, wb)

        def update(p, s):
            upd, s = opt.update(g, s, p)
            return optax.apply_updates(p, upd), s

        # a minibatch of weight 0 is skipped: Adam's momentum would still move p
        # (a real branch unless vmapped, so the common case pays nothing)
        live = jnp.sum(wb) > 0
        return jax.lax.cond(live, update, lambda p, s: (p, s), p, s), (loss, live)

    def epoch(carry, k):
        perm = jax.random.permutation(k, n)
        # padded slots carry index n (weight 0)
        idx = jnp.concatenate([perm, jnp.full((pad,), n, perm.dtype)])
        carry, (losses, live) = jax.lax.scan(step, carry, idx.reshape(n_batches, bs))
        live = live.astype(losses.dtype)
        return carry, jnp.sum(losses * live) / jnp.maximum(jnp.sum(live), 1)

    keys = jax.random.split(key, tcfg.epochs)
    (params, _), losses = jax.lax.scan(epoch, (params, opt.init(params)), keys)
    return params, losses
