r"""Closed-form predictions of linearised training under MSE gradient flow.

For the loss $\frac1{2n}\sum_i\|f(x_i) - y_i\|^2$ and learning rate $\eta$, a
linearised network (or kernel regression with kernel $\Theta$) follows
$\dot f(X) = -\frac\eta n\Theta(f(X) - y)$, so with $\Theta = U\Lambda U^\top$
$$f_t(X) = y + U e^{-\eta t\Lambda/n}U^\top(f_0(X) - y),\qquad
f_t(x_*) = f_0(x_*) + \Theta_{*X} U \frac{1 - e^{-\eta t\Lambda/n}}{\Lambda} U^\top
(y - f_0(X)).$$
The eigendecomposition is done once; the returned function evaluates any times.

References:
  Jacot et al. 2018, arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720 (eq. 9);
  neural-tangents `predict.gradient_descent_mse`. Claim NTK-4.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Real

from jaxfeat._src import linalg
from jaxfeat._src.checks import (
    check_finite,
    check_ndim,
    check_positive,
    check_shape,
    is_concrete,
)
from jaxfeat._src.typing import Scalar


class FlowPrediction(NamedTuple):
    """Outputs along gradient flow: `train` `(t, n, ...)` and `test` `(t, m, ...)`."""

    train: Float[Array, "t n ..."]
    test: Float[Array, "t m ..."] | None


def _check_symmetric(k) -> None:
    if not is_concrete(k):
        return
    m = np.asarray(k, np.float64)
    eps = float(np.finfo(np.asarray(k).dtype).eps)
    scale = max(float(np.abs(m).max()), np.finfo(float).tiny)
    if not np.allclose(m, m.T, rtol=0, atol=1e3 * eps * scale):
        raise ValueError("k_train_train: expected a symmetric kernel matrix")


def _check_round_off_psd(evals) -> None:
    """Raises for eigenvalues below -sqrt(eps) max|eig|: indefinite beyond round-off.

    A kernel computed in float32 near correlation 1 (duplicate inputs; the arccos
    of the ReLU kernels) carries errors of about sqrt(eps), not eps.
    """
    if not is_concrete(evals):
        return
    ev = np.asarray(evals)
    scale = max(float(np.abs(ev).max()), np.finfo(float).tiny)
    if ev.min() < -np.sqrt(np.finfo(ev.dtype).eps) * scale:
        raise ValueError(
            "k_train_train: expected a positive semi-definite kernel; smallest "
            f"eigenvalue {ev.min():.3g} (largest {scale:.3g})"
        )


def _initial_outputs(name, value, shape, dtype):
    """`value` broadcast to `shape`, or a `ValueError` naming `name`."""
    value = jnp.asarray(value, dtype)
    try:
        out = jnp.broadcast_to(value, shape)
    except ValueError as err:
        raise ValueError(
            f"{name}: expected initial outputs broadcastable to {shape}; got shape "
            f"{value.shape}"
        ) from err
    check_finite(name, value)
    return out


def gradient_flow_mse(
    k_train_train: Float[Array, "n n"],
    y_train: Real[Array, "n ..."],
    *,
    lr: Scalar = 1.0,
    diag_reg: Scalar = 0.0,
) -> Callable:
    r"""Closed-form MSE gradient flow of a kernel model; returns `predict(t, ...)`.

    Args:
      k_train_train: kernel (NTK for a linearised network) on the training inputs,
        shape `(n, n)`, symmetric PSD. When concrete this is checked up to
        round-off (eigenvalues >= -sqrt(eps) times the largest magnitude, eps of
        the kernel's dtype: the ReLU kernels' arccos carries ~sqrt(eps) errors);
        the round-off that remains is symmetrised away and negative eigenvalues
        are clipped to 0.
      y_train: targets, shape `(n,)` or `(n, k)`.
      lr: learning rate $\eta$ (time is $t = \eta\cdot$steps when `lr=1`).
      diag_reg: ridge $r$ added to the kernel's eigenvalues, absolute (as
        neural-tangents' `diag_reg` with `diag_reg_absolute_scale=True`). As there,
        the train outputs follow the regularised flow and still converge to
        `y_train`, while the test outputs converge to $K_*(K + rI)^{-1}y$.

    Returns:
      `predict(t, k_test_train=None, fx_train_0=0.0, fx_test_0=0.0) ->
      FlowPrediction`, with times `t >= 0` a scalar or shape `(t,)`, `k_test_train`
      of shape `(m, n)`, and initial outputs broadcastable to the targets. Outputs
      are floating point (the kernel's dtype, or wider targets'), also for integer
      labels.
      `predict` raises `ValueError` for a `k_test_train` of the wrong shape and
      (when concrete) for negative or non-finite times or a non-finite
      `k_test_train`.

    Raises:
      ValueError: for a non-square kernel, `y_train` without a leading axis of size
        n, and (values checked when concrete) non-finite kernel or targets, a
        non-symmetric or indefinite kernel beyond round-off, a non-positive `lr` or
        a negative `diag_reg`.
    """
    check_ndim("k_train_train", k_train_train, 2, "(n, n)")
    n = k_train_train.shape[0]
    check_shape("k_train_train", k_train_train, (n, n), "(n, n)")
    if jnp.ndim(y_train) < 1 or y_train.shape[0] != n:
        raise ValueError(
            f"y_train: expected shape ({n},) or ({n}, k) for the kernel "
            f"{k_train_train.shape}; got {jnp.shape(y_train)}"
        )
    check_finite("k_train_train", k_train_train)
    check_finite("y_train", y_train)
    check_positive("lr", lr)
    check_positive("diag_reg", diag_reg, strict=False)
    _check_symmetric(k_train_train)
    sym = 0.5 * (k_train_train + k_train_train.T)
    evals, evecs = linalg.eigh(sym)
    _check_round_off_psd(evals)
    # Negative eigenvalues within round-off are removed here.
    evals = jnp.clip(evals, 0.0) + diag_reg
    # float even for integer labels: the initial outputs and the flow take y's dtype
    y2 = y_train.reshape(n, -1).astype(jnp.result_type(evals, y_train))

    def predict(t, k_test_train=None, fx_train_0=0.0, fx_test_0=0.0) -> FlowPrediction:
        check_positive("t", t, strict=False)
        if jnp.ndim(t) > 1:
            raise ValueError(f"t: expected a scalar or shape (t,); got {jnp.shape(t)}")
        if k_test_train is not None:
            check_shape("k_test_train", k_test_train, (None, n), f"(m, {n})")
            check_finite("k_test_train", k_test_train)
        t = jnp.atleast_1d(jnp.asarray(t, evals.dtype))
        f0 = _initial_outputs("fx_train_0", fx_train_0, y_train.shape, y2.dtype)
        resid = evecs.T @ (f0.reshape(n, -1) - y2)  # (n, k) in the eigenbasis
        rate = lr * evals / n
        decay = jnp.exp(-t[:, None] * rate[None, :])  # (t, n)
        train = y2[None] + jnp.einsum("ij,tj,jk->tik", evecs, decay, resid)
        train = train.reshape((t.shape[0], *y_train.shape))
        if k_test_train is None:
            return FlowPrediction(train, None)
        # (1 - e^{-rate t}) / lambda, with its lambda -> 0 limit t lr / n
        safe = jnp.where(evals > 0, evals, 1.0)
        grow = jnp.where(
            evals[None] > 0,
            -jnp.expm1(-t[:, None] * rate[None]) / safe[None],
            t[:, None] * lr / n * jnp.ones_like(evals)[None],
        )
        m = k_test_train.shape[0]
        f0t = _initial_outputs(
            "fx_test_0", fx_test_0, (m, *y_train.shape[1:]), y2.dtype
        )
        test = f0t.reshape(m, -1)[None] - jnp.einsum(
            "mi,ij,tj,jk->tmk", k_test_train, evecs, grow, resid
        )
        return FlowPrediction(train, test.reshape((t.shape[0], m, *y_train.shape[1:])))

    return predict
