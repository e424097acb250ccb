r"""Training classifiers of the shortcut framework with optax (MSE on $\pm1$ labels).

Pure and `vmap`-able over seeds: the key draws the initial parameters and every
minibatch (`fold_in(key, step)`), so, with the keyword-only configurations bound
first (vmap maps keyword arguments over axis 0),
`jax.vmap(functools.partial(train_classifier, net=net, train=tc), in_axes=(0, None,
None, None, None, None))(keys, x, y, x_val, y_val, lr)` trains one network per seed
in one program.

References:
  Hermann et al. 2024, arXiv:2310.16228 (linear, one- and multi-hidden-layer MLPs);
  training recipe from spec ntk_shortcut.md Sec. 1.6/2 (flagged unverified there).
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from jaxfeat._src.checks import (
    check_choice,
    check_count,
    check_finite,
    check_positive,
    check_shape,
    is_concrete,
)
from jaxfeat._src.typing import PRNGKey, Scalar
from jaxfeat.ntk._mlp import Dense, MLPConfig, init_mlp, mlp_apply

OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Static settings of classifier training.

    Attributes:
      steps: optimisation steps.
      batch_size: examples per step (sampled with replacement); `None` uses the
        whole training set every step (deterministic full-batch training).
      optimizer: `"adam"` or `"sgd"`.
      eval_every: steps between validation checks (best-validation checkpointing).
    """

    steps: int = 2000
    batch_size: int | None = 64
    optimizer: str = "adam"
    eval_every: int = 100

    def __post_init__(self):
        check_count("steps", self.steps, 1)
        if self.batch_size is not None:
            check_count("batch_size", self.batch_size, 1)
        check_count("eval_every", self.eval_every, 1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.steps % self.eval_every:
            raise ValueError(
                f"steps: expected a multiple of eval_every={self.eval_every}; "
                f"got {self.steps}"
            )


class TrainResult(NamedTuple):
    """Final and best-validation parameters, and the logged curves.

    Attributes:
      final: parameters after the last step.
      best: parameters at the best validation accuracy (first best on ties).
      train_loss: mean of the (minibatch) training losses over the
        `eval_every` steps ending at each check, each taken before its update,
        shape `(t,)`.
      val_accuracy: validation accuracy at each check, shape `(t,)`; NaN once the
        network's outputs are NaN (diverged).
    """

    final: tuple[Dense, ...]
    best: tuple[Dense, ...]
    train_loss: Float[Array, " t"]
    val_accuracy: Float[Array, " t"]


def _mse(params, x, y, net):
    out = jax.vmap(functools.partial(mlp_apply, cfg=net), in_axes=(None, 0))(params, x)
    return 0.5 * jnp.mean((out[:, 0] - y) ** 2)


def _accuracy(params, x, y, net):
    """Fraction of sign(out) == y; NaN if any output is NaN (a diverged network)."""
    out = jax.vmap(functools.partial(mlp_apply, cfg=net), in_axes=(None, 0))(params, x)
    hit = (jnp.where(out[:, 0] >= 0, 1.0, -1.0) == y).astype(out.dtype)
    return jnp.mean(jnp.where(jnp.isnan(out[:, 0]), jnp.nan, hit))


def train_classifier(
    key: PRNGKey,
    x: Float[Array, "n d"],
    y: Float[Array, " n"],
    x_val: Float[Array, "m d"],
    y_val: Float[Array, " m"],
    lr: Scalar,
    *,
    net: MLPConfig,
    train: TrainConfig,
) -> TrainResult:
    r"""Trains `net` on $\pm1$ labels with MSE, keeping the best-validation checkpoint.

    Args:
      key: PRNG key (initialisation and minibatches).
      x: training inputs, shape `(n, d)`.
      y: training labels in $\{-1, +1\}$, shape `(n,)`.
      x_val: validation inputs, shape `(m, d)`.
      y_val: validation labels, shape `(m,)`.
      lr: learning rate (an array argument: sweeps do not recompile).
      net: network (`out_dim` must be 1).
      train: static training settings.

    Returns:
      `TrainResult`. A diverged run is not an error: its losses and validation
      accuracies are NaN (check them before using its parameters).

    Raises:
      ValueError: for mismatched shapes, an empty `x` or `x_val`, `out_dim != 1`,
        a non-positive `lr`, and (checked when concrete) non-finite inputs or
        labels outside $\{-1, +1\}$.
    """
    if net.out_dim != 1:
        raise ValueError(
            f"net: expected out_dim=1 for a binary classifier; got {net.out_dim}"
        )
    d = net.in_dim
    check_shape("x", x, (None, d), f"(n, {d})")
    check_shape("y", y, (x.shape[0],), f"({x.shape[0]},) matching x")
    check_shape("x_val", x_val, (None, d), f"(m, {d})")
    for name, arr in (("x", x), ("x_val", x_val)):
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one example; got {arr.shape}")
    check_shape(
        "y_val", y_val, (x_val.shape[0],), f"({x_val.shape[0]},) matching x_val"
    )
    for name, arr in (("x", x), ("x_val", x_val)):
        check_finite(name, arr)
    for name, arr in (("y", y), ("y_val", y_val)):
        if is_concrete(arr) and not np.all(np.abs(np.asarray(arr)) == 1):
            raise ValueError(
                f"{name}: expected labels in {{-1, +1}}; got values "
                f"{np.unique(np.asarray(arr))[:4]}"
            )
    check_positive("lr", lr)
    return _train(key, x, y, x_val, y_val, lr, net=net, train=train)


@functools.partial(jax.jit, static_argnames=("net", "train"))
def _train(key, x, y, x_val, y_val, lr, *, net, train):
    k_init, k_data = jax.random.split(key)
    params = init_mlp(k_init, net, x.dtype)
    make = optax.adam if train.optimizer == "adam" else optax.sgd
    opt = make(lr)
    grad_fn = jax.value_and_grad(_mse)

    def step(carry, i):
        p, s = carry
        if train.batch_size is None:
            xb, yb = x, y
        else:
            idx = jax.random.randint(
                jax.random.fold_in(k_data, i), (train.batch_size,), 0, x.shape[0]
            )
            xb, yb = x[idx], y[idx]
        loss, g = grad_fn(p, xb, yb, net)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), loss

    def block(carry, j):
        (p, s), best, best_acc = carry
        steps = j * train.eval_every + jnp.arange(train.eval_every)
        (p, s), losses = jax.lax.scan(step, (p, s), steps)
        acc = _accuracy(p, x_val, y_val, net)
        better = acc > best_acc  # False for a NaN accuracy: keep the last finite best
        best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), p, best)
        best_acc = jnp.where(better, acc, best_acc)
        return ((p, s), best, best_acc), (jnp.mean(losses), acc)

    init = ((params, opt.init(params)), params, jnp.asarray(-1.0, x.dtype))
    ((final, _), best, _), (loss, acc) = jax.lax.scan(
        block, init, jnp.arange(train.steps // train.eval_every)
    )
    return TrainResult(final, best, loss, acc)
