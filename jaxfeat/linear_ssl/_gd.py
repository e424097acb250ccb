r"""Full-matrix gradient descent on the population objectives, in `lax.scan`.

Step $k$ of gradient descent with learning rate $\eta$ approximates gradient flow at
time $t_{GF} = \eta k$ (per-layer parameters, loss $\tfrac12E\|\cdot\|^2$), with a
global error $O(\eta)$ (claim LSSL-3 and `theory/linear_ssl.md`).

References:
  Littwin et al. 2024, arXiv:2407.03475; claims LSSL-2, LSSL-3.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from jaxfeat._src.checks import (
    check_choice,
    check_count,
    check_finite,
    check_in_range,
    check_ndim,
    check_positive,
    check_shape,
)
from jaxfeat._src.progress import run_chunks
from jaxfeat._src.sharding import batch_size, device_mesh, shard_batch, unpad
from jaxfeat._src.typing import IntScalar, Scalar
from jaxfeat.linear_ssl._data import Covariances, check_covariances
from jaxfeat.linear_ssl._models import Params, check_depth, encoder_matrix, imbalance
from jaxfeat.linear_ssl._objectives import (
    OBJECTIVES,
    population_gradients,
    population_loss,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GDConfig:
    """Static settings of a gradient-descent run (hashable: pass as a static argument).

    Attributes:
      objective: `"jepa"` (stop-gradient self-distillation) or `"mae"`.
      n_steps: number of gradient steps, a multiple of `log_every`.
      log_every: steps between logged states.
      ema: if True, the JEPA target encoder is an EMA of the online layers with decay
        `ema_decay` (an array argument of `simulate_gd`); decay 0 is the paper's
        stop-gradient through the online encoder.
    """

    objective: str = "jepa"
    n_steps: int
    log_every: int = 1
    ema: bool = False

    def __post_init__(self):
        check_choice("objective", self.objective, OBJECTIVES)
        check_count("n_steps", self.n_steps, 1)
        check_count("log_every", self.log_every, 1)
        if self.n_steps % self.log_every:
            raise ValueError(
                f"n_steps: expected a multiple of log_every={self.log_every}; "
                f"got {self.n_steps}"
            )

    @property
    def n_logs(self) -> int:
        """Number of logged states: the initial one plus one every `log_every` steps."""
        return self.n_steps // self.log_every + 1


class GDState(NamedTuple):
    """State of a gradient-descent run.

    Attributes:
      params: online encoder and head.
      target_W: EMA target encoder layers `(l, d, d)` (equal to `params.W` without EMA).
      step: steps taken so far, an int32 scalar.
    """

    params: Params
    target_W: Float[Array, "l d d"]
    step: Int[Array, ""]


class GDLog(NamedTuple):
    r"""Logged trajectory of a gradient-descent run, `t` logged states.

    Attributes:
      t: gradient-flow times $\eta \cdot$ step, shape `(t,)`: the run's `lr` times
        the steps since `init_gd`, so a run continued from another run's final
        state with a different `lr` logs times in its own `lr`'s units.
      encoder: end-to-end encoders $\bar W$, shape `(t, d, d)`.
      head: predictor/decoder $V$, shape `(t, d, d)`.
      loss: population loss, shape `(t,)`.
      imbalance: balancedness violation (`imbalance`), shape `(t,)`.
    """

    t: Float[Array, " t"]
    encoder: Float[Array, "t d d"]
    head: Float[Array, "t d d"]
    loss: Float[Array, " t"]
    imbalance: Float[Array, " t"]


def init_gd(params: Params) -> GDState:
    """Starts a run at `params` (step 0, target encoder = online encoder)."""
    return GDState(params, params.W, jnp.zeros((), jnp.int32))


def _log_entry(state, cov, lr, cfg, depth):
    p = state.params
    tgt = state.target_W if cfg.ema else None
    return (
        lr * state.step.astype(p.V.dtype),
        encoder_matrix(p, depth),
        p.V,
        population_loss(p, cov, objective=cfg.objective, depth=depth, target_W=tgt),
        imbalance(p, depth),
    )


def _check_run(state: GDState, cov: Covariances, lr, depth, ema_decay) -> None:
    """Checks shared by the GD entry points (values skipped when traced).

    Shapes are compared on the trailing axes, so a batch (`sweep_gd`) passes too.
    """
    W, V = state.params.W, state.params.V
    d = V.shape[-1]
    if V.shape[-2:] != (d, d) or W.shape[-2:] != (d, d):
        raise ValueError(
            f"state.params: expected W (..., l, d, d) and V (..., d, d); got W "
            f"{W.shape}, V {V.shape}"
        )
    check_shape("state.target_W", state.target_W, W.shape, f"{W.shape} as W")
    if cov.xx.shape[-2:] != (d, d):
        raise ValueError(
            f"cov.xx: expected trailing shape (d, d) = ({d}, {d}) as the parameters; "
            f"got {cov.xx.shape}"
        )
    check_positive("lr", lr)
    check_depth(depth, state.params.W.shape[-3])
    check_in_range("ema_decay", ema_decay, 0.0, 1.0, closed=(True, False))
    for name, leaf in (
        ("state.params.W", state.params.W),
        ("state.params.V", state.params.V),
    ):
        check_finite(name, leaf)
    check_covariances("cov", cov, xx_definite=False)
    _check_no_promotion(state, cov)


def _check_scalars(lr, ema_decay) -> None:
    # An array would broadcast over a parameter axis (per-column learning rates):
    # a grid of configurations is `sweep_gd`'s job, or `vmap`'s.
    check_ndim("lr", lr, 0, "() (a scalar; use sweep_gd or vmap for a grid)")
    check_ndim("ema_decay", ema_decay, 0, "() (a scalar; use sweep_gd or vmap)")


def _check_no_promotion(state: GDState, cov: Covariances) -> None:
    """Raises unless `cov` keeps the parameters' dtype (checked at trace time).

    Float64 covariances with float32 parameters (under x64) would promote the update,
    and `lax.scan` needs its carry to keep one dtype. (`lr` and `ema_decay` are cast
    to the parameters' dtype instead: hyperparameters, not data.)
    """
    want = jnp.result_type(state.params.W)
    got = jnp.result_type(want, *jax.tree_util.tree_leaves(cov))
    if got != want:
        raise TypeError(
            f"cov: its dtype would promote the parameters from {want} to {got}; cast "
            f"it with .astype({want}) or initialise the parameters in {got}"
        )


def simulate_gd(
    state: GDState,
    cov: Covariances,
    lr: Scalar,
    *,
    cfg: GDConfig,
    depth: IntScalar | None = None,
    ema_decay: Scalar = 0.0,
) -> tuple[GDState, GDLog]:
    r"""Runs `cfg.n_steps` steps of full-matrix gradient descent on a population loss.

    Each step subtracts `lr` times the gradient of `population_loss` in every layer
    and the head, computed in closed form by `population_gradients` (the JEPA target is
    held fixed, as `stop_gradient` does), then, with `cfg.ema`, moves the
    target layers to $\tau\, W_{tgt} + (1-\tau) W$. Pure and `jit`/`vmap`-able: `vmap`
    over initial states (seeds, $\varepsilon$), covariances ($\lambda$, $\rho$),
    learning rates and depths (with a shared `max_depth` stack).

    Args:
      state: from `init_gd`; its step sets the time origin of the log.
      cov: covariances, each `(d, d)`.
      lr: learning rate $\eta > 0$ (may be traced).
      cfg: static settings.
      depth: active encoder layers (default all); may be traced.
      ema_decay: EMA decay $\tau \in [0, 1)$, used when `cfg.ema`.

    Returns:
      `(final_state, log)`, where `log` holds `cfg.n_logs` states: the initial one and
      one after every `cfg.log_every` steps.

    Raises:
      ValueError: for a non-positive, NaN or non-scalar `lr`, `depth` outside 1..l,
        `ema_decay` outside [0, 1) or not a scalar, NaN parameters, covariances
        whose `d` is not the parameters', or covariances that hold NaN or are not
        jointly PSD (values checked when concrete, i.e. not under `jit`/`vmap`;
        `run_gd` and `sweep_gd` check them before their compiled programs).
      TypeError: `cov` of a wider dtype than the parameters (e.g. float64
        covariances with float32 parameters), checked at trace time; `lr` and
        `ema_decay` are cast to the parameters' dtype.
    """
    _check_scalars(lr, ema_decay)
    _check_run(state, cov, lr, depth, ema_decay)
    dtype = state.params.W.dtype  # hyperparameters follow the parameters' dtype
    lr, ema_decay = jnp.asarray(lr, dtype), jnp.asarray(ema_decay, dtype)

    def step(s: GDState, _):
        # closed-form semi-gradients: equal to jax.grad of the loss, less work
        g = population_gradients(
            s.params,
            cov,
            objective=cfg.objective,
            depth=depth,
            target_W=s.target_W if cfg.ema else None,
        )
        params = jax.tree_util.tree_map(lambda p, gp: p - lr * gp, s.params, g)
        target = (
            ema_decay * s.target_W + (1 - ema_decay) * params.W if cfg.ema else params.W
        )
        return GDState(params, target, s.step + 1), None

    def block(s, _):
        s, _ = jax.lax.scan(step, s, length=cfg.log_every)
        return s, _log_entry(s, cov, lr, cfg, depth)

    first = _log_entry(state, cov, lr, cfg, depth)
    final, rest = jax.lax.scan(block, state, length=cfg.n_steps // cfg.log_every)
    log = GDLog(
        *(jnp.concatenate([f[None], r]) for f, r in zip(first, rest, strict=True))
    )
    return final, log


def _simulate_positional(state, cov, lr, depth, ema_decay, cfg):
    return simulate_gd(state, cov, lr, cfg=cfg, depth=depth, ema_decay=ema_decay)


# One compiled program per (cfg, shapes): built once at import, not per call.
_simulate_jit = jax.jit(_simulate_positional, static_argnums=(5,))
_sweep_jit = jax.jit(
    jax.vmap(_simulate_positional, in_axes=(0, 0, 0, 0, 0, None)), static_argnums=(5,)
)


def _drop_first_log(log: GDLog, time_axis: int) -> GDLog:
    return jax.tree_util.tree_map(
        lambda x: jax.lax.slice_in_dim(x, 1, x.shape[time_axis], axis=time_axis), log
    )


def _chunked(fn, state, n_chunks, time_axis, desc, progress):
    check_count("n_chunks", n_chunks, 1)

    def chunk(s, i):
        s, log = fn(s)
        return s, log if i == 0 else _drop_first_log(log, time_axis)

    final, logs = run_chunks(chunk, state, n_chunks, desc=desc, progress=progress)
    log = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=time_axis), *logs)
    return final, log


def run_gd(
    state: GDState,
    cov: Covariances,
    lr: Scalar,
    *,
    cfg: GDConfig,
    n_chunks: int = 1,
    depth: IntScalar | None = None,
    ema_decay: Scalar = 0.0,
    progress: bool = True,
) -> tuple[GDState, GDLog]:
    """`simulate_gd` for `n_chunks * cfg.n_steps` steps, jitted, with a progress bar.

    Each chunk reuses one compiled program; the logs are concatenated (each later
    chunk's initial entry, a repeat of the previous chunk's last one, is dropped).

    Args:
      state: initial state.
      cov: covariances, each `(d, d)`.
      lr: learning rate.
      cfg: settings of one chunk.
      n_chunks: number of chunks.
      depth: active encoder layers (default all).
      ema_decay: EMA decay, used when `cfg.ema`.
      progress: show a progress bar between chunks.

    Returns:
      `(final_state, log)` with `n_chunks * (cfg.n_logs - 1) + 1` logged states.

    Raises:
      ValueError: as `simulate_gd` (the values are checked here, before the
        compiled program runs).
    """
    _check_scalars(lr, ema_decay)
    _check_run(state, cov, lr, depth, ema_decay)
    fn = lambda s: _simulate_jit(s, cov, lr, depth, ema_decay, cfg)
    return _chunked(fn, state, n_chunks, 0, f"GD {cfg.objective}", progress)


def sweep_gd(
    state: GDState,
    cov: Covariances,
    lr: Float[Array, " s"] | Scalar,
    *,
    cfg: GDConfig,
    n_chunks: int = 1,
    depth: Int[Array, " s"] | None = None,
    ema_decay: Float[Array, " s"] | Scalar = 0.0,
    progress: bool = True,
) -> tuple[GDState, GDLog]:
    """Gradient descent for a batch of configurations, sharded over every device.

    The batch (leading axis `s` of every leaf of `state` and `cov`, and of `lr`,
    `depth`, `ema_decay`) is padded to a multiple of the device count, laid out over a
    one-axis `jax.sharding` mesh and run by one jitted `vmap` of `simulate_gd`, in
    `n_chunks` chunks with a progress bar. The result equals a Python loop of
    `simulate_gd` over the batch, on any number of devices.

    Args:
      state: batched initial states (e.g. `jax.vmap(init_gd)(params)`).
      cov: batched covariances, each `(s, d, d)`.
      lr: learning rates, shape `(s,)` (a scalar is broadcast).
      cfg: settings of one chunk (shared by the batch).
      n_chunks: number of chunks.
      depth: active layers per configuration, shape `(s,)`; default all layers.
      ema_decay: EMA decays, shape `(s,)` or a scalar.
      progress: show a progress bar between chunks.

    Returns:
      `(final_state, log)` with a leading batch axis `s`; the log has
      `n_chunks * (cfg.n_logs - 1) + 1` entries on axis 1.

    Raises:
      ValueError: as `simulate_gd`, for any configuration of the batch.
    """
    n = batch_size((state, cov))
    dtype = state.params.V.dtype
    n_layers = state.params.W.shape[1]
    depth = jnp.full((n,), n_layers, jnp.int32) if depth is None else depth
    for name, v in (("lr", lr), ("depth", depth), ("ema_decay", ema_decay)):
        if np.ndim(v) > 1 or np.ndim(v) == 1 and np.shape(v) != (n,):
            raise ValueError(
                f"{name}: expected a scalar or shape ({n},) (the batch); got "
                f"{np.shape(v)}"
            )
    args = (
        state,
        cov,
        jnp.broadcast_to(jnp.asarray(lr, dtype), (n,)),
        jnp.broadcast_to(jnp.asarray(depth, jnp.int32), (n,)),
        jnp.broadcast_to(jnp.asarray(ema_decay, dtype), (n,)),
    )
    _check_run(state, cov, args[2], args[3], args[4])
    placed, n = shard_batch(args, device_mesh())
    s0, rest = placed[0], placed[1:]
    fn = lambda s: _sweep_jit(s, *rest, cfg)
    final, log = _chunked(fn, s0, n_chunks, 1, f"GD sweep {cfg.objective}", progress)
    return unpad(final, n), unpad(log, n)
