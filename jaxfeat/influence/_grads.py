r"""Per-example losses and gradients, GGN pseudo-gradients, and random projections.

A model is either a plain `apply_fn(params, x) -> (k,)` of one example or a
`jaxfeat.ntk.MLPConfig`, whose dense layers can be handled in factored form: the
per-example gradient of layer $\ell$ is $DW = Ds\,\bar a^\top$ with
$\bar a = [s_w h; s_b]$ (the homogeneous coordinate carries the NTK bias scale) and
$Ds = \partial L/\partial z_\ell$, so it is stored as the pair $(\bar a, Ds)$.
"""

import dataclasses
import math
from collections.abc import Callable

import einops
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Float

from jaxfeat import ntk
from jaxfeat._src.checks import (
    check_choice,
    check_count,
    check_finite,
    is_concrete,
)
from jaxfeat._src.typing import PRNGKey
from jaxfeat.influence._config import LOSSES
from jaxfeat.influence._taps import layer_factors, tapped_vjp

Model = Callable | ntk.MLPConfig


def model_apply(model: Model, params, x: ArrayLike) -> Array:
    """Output of `model` (callable or `MLPConfig`) on one example."""
    if isinstance(model, ntk.MLPConfig):
        return ntk.mlp_apply(params, x, model)
    return model(params, x)


def output_shape(model: Model, params, x: ArrayLike) -> tuple:
    """Output shape of `model` for one example of the batch `x` (abstract)."""
    spec = lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))
    one = jax.ShapeDtypeStruct(jnp.shape(x)[1:], jnp.result_type(x))
    out = jax.eval_shape(
        lambda p, xi: model_apply(model, p, xi),
        jax.tree_util.tree_map(spec, params),
        one,
    )
    return tuple(out.shape)


def check_data(name_x: str, x, name_y: str, y) -> None:
    """Raises `ValueError` unless `x` holds examples and `y` shares its leading axis."""
    if jnp.ndim(x) < 1 or jnp.shape(x)[0] == 0:
        raise ValueError(
            f"{name_x}: expected a batch of at least one example (n, ...); got shape "
            f"{jnp.shape(x)}"
        )
    if jnp.ndim(y) < 1 or jnp.shape(x)[0] != jnp.shape(y)[0]:
        raise ValueError(
            f"{name_y}: expected a leading axis of {name_x}'s size "
            f"{jnp.shape(x)[:1]}; got shape {jnp.shape(y)}"
        )


def check_targets(name_x: str, x, name_y: str, y, *, model, params, loss) -> None:
    """Raises unless `y` holds valid targets of `model` on the batch `x`.

    Cross-entropy: integer class indices of shape `(n,)` (`(n, T)` for a `(T, k)`
    sequence output; not one-hot), with concrete values in `[0, k)` (a sequence may
    also hold `PAD_LABEL`, -1, at padded positions). MSE: targets
    of shape `(n, *output_shape)` (no silent broadcasting), finite when concrete.
    Shapes and dtypes are checked at trace time; values only when concrete.
    """
    check_data(name_x, x, name_y, y)
    try:
        out = output_shape(model, params, x)
    except (TypeError, ValueError) as err:  # e.g. a feature size unlike the model's
        raise ValueError(
            f"{name_x}: the model fails on one example of shape "
            f"{jnp.shape(x)[1:]}: {err}"
        ) from err
    if not out:
        raise ValueError(
            "model: expected an output of shape (k,) (or (T, k) for a sequence) per "
            "example; got a scalar: return shape (1,) for a single output"
        )
    n = jnp.shape(x)[0]
    if loss == "cross_entropy":
        want = (n, *out[:-1])
        if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
            raise TypeError(
                f"{name_y}: expected integer class labels of shape {want} for "
                f"loss='cross_entropy'; got dtype {jnp.result_type(y)}"
            )
        if jnp.shape(y) != want:
            raise ValueError(
                f"{name_y}: expected integer class labels of shape {want} (one "
                f"index per output row, not one-hot) for outputs {out}; got shape "
                f"{jnp.shape(y)}"
            )
        if is_concrete(y) and jnp.size(y):
            v = np.asarray(y)
            lo = PAD_LABEL if len(out) > 1 else 0  # sequences may be padded
            if v.min() < lo or v.max() >= out[-1]:
                pad = f" or {PAD_LABEL} (padding)" if lo < 0 else ""
                raise ValueError(
                    f"{name_y}: expected class labels in [0, {out[-1]}){pad}; got "
                    f"range [{v.min()}, {v.max()}]"
                )
        return
    if tuple(jnp.shape(y)[1:]) != out:
        raise ValueError(
            f"{name_y}: expected targets of shape {(n, *out)} (the model output per "
            f"example) for loss='mse'; got {jnp.shape(y)}"
        )
    check_finite(name_y, y)


PAD_LABEL = -1
"""Cross-entropy label of a padded position of a sequence (ignored everywhere)."""


def output_loss(f: ArrayLike, y: ArrayLike, loss: str) -> Array:
    """Per-example loss on the output `f` `(k,)`: softmax CE (label `y`) or MSE.

    A sequence output `(..., k)` (one row per position) takes labels `(...)` (or
    targets `(..., k)`) and the loss is summed over the positions; a label equal to
    `PAD_LABEL` (-1) marks a padded position, which adds nothing.
    """
    f = jnp.asarray(f)
    if loss == "cross_entropy":
        lab = jnp.asarray(y).astype(jnp.int32)
        real = lab != PAD_LABEL  # padded positions of a sequence add nothing
        picked = jnp.take_along_axis(f, jnp.maximum(lab, 0)[..., None], axis=-1)
        terms = jax.nn.logsumexp(f, axis=-1) - picked[..., 0]
        return jnp.sum(jnp.where(real, terms, 0.0))
    return 0.5 * jnp.sum((f - y) ** 2)


def example_loss_fn(model: Model, loss: str) -> Callable:
    r"""The per-example loss $L(\theta, x, y)$ of a model, as `loss_fn(params, x, y)`.

    Args:
      model: `apply_fn(params, x) -> (k,)` for one example, or an `ntk.MLPConfig`.
      loss: `"cross_entropy"` (integer label) or `"mse"` ($\tfrac12\|f-y\|^2$).

    Returns:
      `loss_fn(params, x, y) -> ()`, a scalar for one example.

    Raises:
      ValueError: if `loss` is unknown.
    """
    check_choice("loss", loss, LOSSES)
    return _ExampleLoss(model, loss)


@dataclasses.dataclass(frozen=True)
class _ExampleLoss:
    """Hashable by value, so `jit` caches on `(model, loss)` across calls."""

    model: Model
    loss: str

    def __call__(self, params, x, y):
        return output_loss(model_apply(self.model, params, x), y, self.loss)


def _per_example_losses(loss_fn, params, x, y):
    return jax.vmap(loss_fn, in_axes=(None, 0, 0))(params, x, y)


def _per_example_grads(loss_fn, params, x, y):
    return jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0))(params, x, y)


_losses_jit = jax.jit(_per_example_losses, static_argnames="loss_fn")
_grads_jit = jax.jit(_per_example_grads, static_argnames="loss_fn")


def per_example_losses(
    loss_fn: Callable, params, x: ArrayLike, y: ArrayLike
) -> Float[Array, " n"]:
    r"""Losses $L(\theta, x_n, y_n)$ of every example (`vmap` of `loss_fn`).

    Args:
      loss_fn: `loss_fn(params, x, y) -> ()` of one example (see `example_loss_fn`).
      params: parameter pytree.
      x: inputs with a leading example axis `(n, ...)`.
      y: targets `(n, ...)`.

    Returns:
      Losses, shape `(n,)`.

    Raises:
      ValueError: if `x` and `y` differ in their leading axis, concrete `x` holds
        NaN/inf, or (for a loss from `example_loss_fn`) `y` is not valid targets
        (see `fit_curvature`); TypeError: for non-integer cross-entropy labels.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    _check_batch(loss_fn, params, x, y)
    return _losses_jit(loss_fn, params, x, y)


def per_example_grads(loss_fn: Callable, params, x: ArrayLike, y: ArrayLike):
    r"""Per-example gradients $\nabla_\theta L(\theta, x_n, y_n)$ (`vmap(grad)`).

    Args:
      loss_fn: `loss_fn(params, x, y) -> ()` of one example (see `example_loss_fn`).
      params: parameter pytree.
      x: inputs `(n, ...)`.
      y: targets `(n, ...)`.

    Returns:
      A pytree like `params` whose leaves carry a leading axis `n`.

    Raises:
      ValueError, TypeError: as `per_example_losses`.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    _check_batch(loss_fn, params, x, y)
    return _grads_jit(loss_fn, params, x, y)


def _check_batch(loss_fn, params, x, y) -> None:
    check_finite("x", x)
    if isinstance(loss_fn, _ExampleLoss):
        check_targets(
            "x", x, "y", y, model=loss_fn.model, params=params, loss=loss_fn.loss
        )
    else:  # an opaque loss: only the example axis is known
        check_data("x", x, "y", y)


def output_pseudo_grads(
    f: Array, y: Array, key, *, loss: str, fisher: str, n_samples: int
) -> tuple[Array, Array]:
    r"""Output-space pseudo-gradients $r_c$ and weights $w_c$ of one example.

    $\sum_c w_c r_c r_c^\top$ is the output-space curvature: for `"exact"` it is
    the loss Hessian in $f$ ($\mathrm{diag}(p) - pp^\top$ for softmax CE, $I$ for
    MSE), for `"sampled"` its Monte Carlo estimate with labels $\hat y \sim p(y|x)$,
    for `"empirical"` the outer product of the true-label gradient.

    Args:
      f: `(k,)` model output, or `(..., k)` for a sequence (positions independent).
      y: the label (or target) of the example (`(...)` labels for a sequence).
      key: a PRNG key, read only when `fisher="sampled"`.
      loss: `"cross_entropy"` or `"mse"`.
      fisher: `"exact"`, `"sampled"` or `"empirical"`.
      n_samples: labels drawn per example when sampled.

    Returns:
      `(r, w)` of shapes `(c, *f.shape)` and `(c,)`.
    """
    if f.ndim > 1:
        return _sequence_pseudo_grads(f, y, key, loss, fisher, n_samples)
    k = f.shape[0]
    f = lax.stop_gradient(f)
    eye = jnp.eye(k, dtype=f.dtype)
    if loss == "cross_entropy":
        p = jax.nn.softmax(f)
        if fisher == "exact":
            return p[None, :] - eye, p
        if fisher == "sampled":
            labels = jax.random.categorical(key, f, shape=(n_samples,))
            w = jnp.full((n_samples,), 1.0 / n_samples, f.dtype)
            return p[None, :] - jax.nn.one_hot(labels, k, dtype=f.dtype), w
        r = p - jax.nn.one_hot(y.astype(jnp.int32), k, dtype=f.dtype)
        return r[None, :], jnp.ones((1,), f.dtype)
    if fisher == "exact":
        return eye, jnp.ones((k,), f.dtype)
    if fisher == "sampled":
        w = jnp.full((n_samples,), 1.0 / n_samples, f.dtype)
        return jax.random.normal(key, (n_samples, k), f.dtype), w
    return (f - y)[None, :], jnp.ones((1,), f.dtype)


def _sequence_pseudo_grads(f, y, key, loss, fisher, n_samples):
    r"""`output_pseudo_grads` of a `(..., k)` output: positions are independent.

    Exact: one pseudo-gradient per (position, class), nonzero at its position only,
    so $\sum_c w_c r_c r_c^\top$ is block diagonal over positions. Sampled: one label
    per position per draw (cross-position terms vanish in expectation). Padded
    positions (label `PAD_LABEL`) get zero pseudo-gradients.
    """
    shape, k = f.shape, f.shape[-1]
    f2 = lax.stop_gradient(f).reshape(-1, k)
    n_pos = f2.shape[0]
    eye_k = jnp.eye(k, dtype=f.dtype)
    at_pos = jnp.broadcast_to(  # (t, c, t', k): 1 where t' = t
        jnp.eye(n_pos, dtype=f.dtype)[:, None, :, None], (n_pos, k, n_pos, k)
    )
    if loss == "cross_entropy":
        p = jax.nn.softmax(f2, axis=-1)
        lab = jnp.asarray(y).astype(jnp.int32).reshape(-1)
        real = (lab != PAD_LABEL).astype(f.dtype)  # padded positions: no curvature
        if fisher == "exact":
            diff = (p[:, None, :] - eye_k[None]) * real[:, None, None]  # (t, c, k)
            r = at_pos * diff[:, :, None, :]  # (t, c, t', k)
            return r.reshape(n_pos * k, *shape), p.reshape(-1)
        if fisher == "sampled":
            labels = jax.random.categorical(key, f2, shape=(n_samples, n_pos))
            r = (p[None] - jax.nn.one_hot(labels, k, dtype=f.dtype)) * real[:, None]
            w = jnp.full((n_samples,), 1.0 / n_samples, f.dtype)
            return r.reshape(n_samples, *shape), w
        r = (p - jax.nn.one_hot(jnp.maximum(lab, 0), k, dtype=f.dtype)) * real[:, None]
        return r.reshape(1, *shape), jnp.ones((1,), f.dtype)
    if fisher == "exact":
        r = jnp.eye(n_pos * k, dtype=f.dtype).reshape(n_pos * k, *shape)
        return r, jnp.ones((n_pos * k,), f.dtype)
    if fisher == "sampled":
        w = jnp.full((n_samples,), 1.0 / n_samples, f.dtype)
        return jax.random.normal(key, (n_samples, *shape), f.dtype), w
    return (f2.reshape(shape) - y)[None], jnp.ones((1,), f.dtype)


def example_keys(key: PRNGKey | None, start, n: int) -> Array:
    """Per-example keys `fold_in(key, start + i)`.

    With `key=None` (Fisher modes that draw nothing) the result is a placeholder
    array of zeros that no code path reads: there is no default key.
    """
    if key is None:
        return jnp.zeros((n,), jnp.uint32)
    idx = start + jnp.arange(n, dtype=jnp.int32)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, idx)


def _mlp_vjp(params, x, mlp):
    deltas = tuple(jnp.zeros(layer.b.shape, layer.b.dtype) for layer in params)
    fwd = lambda d: (lambda o: (o[0], o[1]))(ntk.mlp_taps(params, x, mlp, d))
    out, vjp_fn, inputs = jax.vjp(fwd, deltas, has_aux=True)
    _, _, bias_scales = ntk.mlp_taps(params, x, mlp)
    abar = tuple(
        jnp.concatenate([h, jnp.full((1,), sb, h.dtype)])
        for h, sb in zip(inputs, bias_scales, strict=True)
    )
    return out, vjp_fn, abar


def mlp_pseudo_factors(params, x, y, keys, *, mlp, loss, fisher, n_samples):
    """Per layer `(abar (n, i+1), ds (n, c, o))`; pseudo-grad weights `(n, c)`."""

    def one(xi, yi, ki):
        out, vjp_fn, abar = _mlp_vjp(params, xi, mlp)
        r, w = output_pseudo_grads(
            out, yi, ki, loss=loss, fisher=fisher, n_samples=n_samples
        )
        (ds,) = jax.vmap(vjp_fn)(r)
        return abar, ds, w

    abar, ds, w = jax.vmap(one)(x, y, keys)
    return tuple(zip(abar, ds, strict=True)), w


def tapped_pseudo_factors(
    params, x, y, keys, *, model, layers, loss, fisher, n_samples
):
    r"""Per layer `(abar (n, T, i+b), ds (n, c, T, o), tok (n, T))` and `w (n, c)`.

    `tok` is 1 for a real position and 0 for a padded one (cross-entropy label
    `PAD_LABEL`), for layers with one position per output row; padded positions'
    `abar` and `ds` are both zeroed (kronfluence's masking), so they leave $A$,
    its token count, $S$ and $\Lambda$ even when a model lets padded inputs feed
    real outputs (no attention mask): there `ds` is not 0 at the padding.
    """

    def one(xi, yi, ki):
        out, vjp_fn, acts = tapped_vjp(model, layers, params, xi)
        r, w = output_pseudo_grads(
            out, yi, ki, loss=loss, fisher=fisher, n_samples=n_samples
        )
        ds = jax.vmap(vjp_fn)(r)
        real = None
        if loss == "cross_entropy" and out.ndim > 1:
            real = (jnp.asarray(yi).reshape(-1) != PAD_LABEL).astype(out.dtype)
        per = []
        for t, a, d in zip(layers, acts, ds, strict=True):
            abar, dsl = layer_factors(t, a, d)
            tok = jnp.ones(abar.shape[:1], abar.dtype)
            if real is not None and abar.shape[0] == real.shape[0]:
                tok = real.astype(abar.dtype)
                abar = abar * tok[:, None]
                dsl = dsl * tok[None, :, None].astype(dsl.dtype)  # (c, T, o)
            per.append((abar, dsl, tok))
        return tuple(per), w

    return jax.vmap(one)(x, y, keys)


def grad_factors(params, x, y, *, model, layers, loss):
    """Per layer `(abar (n, T, i+b), ds (n, T, o))` of the true-label gradients.

    `layers` are the `DenseTap`s of a callable model; for an `ntk.MLPConfig` (and
    `layers=()`) the MLP taps are used and `T = 1`.
    """
    if isinstance(model, ntk.MLPConfig):
        per = _dense_grad_factors(params, x, y, model, loss)
        return tuple((a[:, None], d[:, None]) for a, d in per)

    def one(xi, yi):
        out, vjp_fn, acts = tapped_vjp(model, layers, params, xi)
        ds = vjp_fn(jax.grad(output_loss)(out, yi, loss))
        return tuple(
            layer_factors(t, a, d) for t, a, d in zip(layers, acts, ds, strict=True)
        )

    return jax.vmap(one)(x, y)


def _dense_grad_factors(params, x, y, mlp, loss):
    def one(xi, yi):
        out, vjp_fn, abar = _mlp_vjp(params, xi, mlp)
        r = jax.grad(output_loss)(out, yi, loss)
        (ds,) = vjp_fn(r)
        return tuple(zip(abar, ds, strict=True))

    return jax.vmap(one)(x, y)


_dense_grad_factors_jit = jax.jit(_dense_grad_factors, static_argnames=("mlp", "loss"))


def dense_grad_factors(
    params: tuple[ntk.Dense, ...],
    x: ArrayLike,
    y: ArrayLike,
    *,
    mlp: ntk.MLPConfig,
    loss: str = "cross_entropy",
) -> tuple[tuple[Float[Array, "n i"], Float[Array, "n o"]], ...]:
    r"""Per-example dense-layer gradients kept factored as $Ds \otimes \bar a$.

    The gradient of layer $\ell$ in matrix form (`dense_matrix`) is the outer
    product $Ds_n \bar a_n^\top$, shape `(o, i + 1)`; $\bar a = [s_w h; s_b]$ so the
    NTK scales are included and the result equals the true parameter gradient.

    Args:
      params: layers from `ntk.init_mlp`.
      x: inputs `(n, d)`.
      y: labels `(n,)` (cross-entropy) or targets `(n, k)` (MSE).
      mlp: the network configuration.
      loss: `"cross_entropy"` or `"mse"`.

    Returns:
      Per layer, `(abar, ds)` of shapes `(n, i + 1)` and `(n, o)`.

    Raises:
      ValueError: if `loss` is unknown, concrete `x` holds NaN/inf, or `y` does
        not hold valid targets (labels in `[0, k)`, MSE targets of the output
        shape and finite).
      TypeError: for non-integer cross-entropy labels.

    References:
      Grosse et al. 2023, arXiv:2308.03296, §2.2 (layer gradients $Ds\,\bar a^\top$).
    """
    check_choice("loss", loss, LOSSES)
    x, y = jnp.asarray(x), jnp.asarray(y)
    check_finite("x", x)
    check_targets("x", x, "y", y, model=mlp, params=params, loss=loss)
    return _dense_grad_factors_jit(params, x, y, mlp, loss)


def dense_matrix(layer: ntk.Dense) -> Float[Array, "o i"]:
    r"""A dense layer (or its gradient) as the `(o, i + 1)` matrix $[W^\top\,|\,b]$.

    Row-major `ravel` of this matrix is the vec convention of the Kronecker factors:
    $G_\ell \approx S \otimes A$ (`jnp.kron(S, A)`).
    """
    return jnp.concatenate([layer.w.T, layer.b[:, None]], axis=1)


def dense_from_matrix(mat: Float[ArrayLike, "o i"]) -> ntk.Dense:
    """Inverse of `dense_matrix`: `(o, i + 1)` matrix to `Dense(w (i, o), b (o,))`."""
    mat = jnp.asarray(mat)
    return ntk.Dense(mat[:, :-1].T, mat[:, -1])


def flatten_batch(tree) -> Array:
    """Leaves with a leading axis `n` raveled and concatenated to `(n, p)`.

    Raises `ValueError` if the leaves do not share the leading axis (an empty
    batch, `n = 0`, gives `(0, p)`).
    """
    leaves = [jnp.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]
    if not leaves or any(leaf.ndim < 1 for leaf in leaves):
        raise ValueError("grads: expected leaves with a leading example axis (n, ...)")
    n = leaves[0].shape[0]
    if any(leaf.shape[0] != n for leaf in leaves):
        got = sorted({leaf.shape[0] for leaf in leaves})
        raise ValueError(f"grads: expected one leading axis n on every leaf; got {got}")
    rows = [leaf.reshape(n, math.prod(leaf.shape[1:])) for leaf in leaves]
    return jnp.concatenate(rows, axis=1)


def random_projection(
    key: PRNGKey, grads, k: int, *, kind: str = "rademacher"
) -> Float[Array, "n k"]:
    r"""Johnson-Lindenstrauss projection $P^\top g_n$ of per-example gradients.

    $P$ has shape `(p, k)` with entries $\pm 1/\sqrt{k}$ (`"rademacher"`) or
    $N(0, 1/k)$ (`"gaussian"`), so $E[\langle P^\top g, P^\top h\rangle] =
    \langle g, h\rangle$. The same key gives the same $P$.

    Args:
      key: PRNG key for $P$.
      grads: pytree of per-example gradients with leading axis `n` (leaves raveled
        in `tree_leaves` order, `p` entries per example).
      k: projection dimension.
      kind: `"rademacher"` or `"gaussian"`.

    Returns:
      Projected gradients, shape `(n, k)`.

    Raises:
      ValueError: if `k < 1`, `kind` is unknown, or concrete `grads` hold NaN/inf.

    References:
      Park et al. 2023, arXiv:2303.14186 (TRAK); Xia et al. 2024, arXiv:2402.04333
      (LESS).
    """
    check_count("k", k, 1)
    check_choice("kind", kind, ("rademacher", "gaussian"))
    g = flatten_batch(grads)
    check_finite("grads", g)
    shape = (g.shape[1], k)
    if kind == "rademacher":
        proj = jax.random.rademacher(key, shape, g.dtype)
    else:
        proj = jax.random.normal(key, shape, g.dtype)
    return einops.einsum(g, proj, "n p, p k -> n k") / math.sqrt(k)
