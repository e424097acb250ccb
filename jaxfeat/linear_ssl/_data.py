r"""Per-mode data specifications and population covariances of two views.

A mode $i$ has cross-view covariance $\lambda_i = E[y_i x_i]$, regression coefficient
$\rho_i = \lambda_i / \sigma_i^2$ with $\sigma_i^2 = E[x_i^2]$, and target variance
$E[y_i^2] \ge \lambda_i \rho_i$ (joint positive semi-definiteness).

References:
  Littwin et al. 2024, "How JEPA Avoids Noisy Features", arXiv:2407.03475, Sec. 3
  (diagonal covariances); theory/linear_ssl.md, claims LSSL-1 and LSSL-12.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Float

from jaxfeat._src import linalg
from jaxfeat._src.arrays import as_float
from jaxfeat._src.checks import (
    check_finite,
    check_in_range,
    check_ndim,
    check_positive,
    check_psd,
    check_shape,
    is_concrete,
)


class ModeSpec(NamedTuple):
    r"""Second moments of $k$ independent modes of a two-view pair $(x, y)$.

    Attributes:
      lam: cross-covariances $\lambda_i = E[y_i x_i]$, shape `(k,)`, positive.
      rho: regression coefficients $\rho_i = \lambda_i/\sigma_i^2$, shape `(k,)`,
        positive.
      y_var: target variances $E[y_i^2]$, shape `(k,)`, at least $\lambda_i\rho_i$.
    """

    lam: Float[Array, " k"]
    rho: Float[Array, " k"]
    y_var: Float[Array, " k"]

    @property
    def x_var(self) -> Float[Array, " k"]:
        r"""Input variances $\sigma_i^2 = \lambda_i / \rho_i$, shape `(k,)`."""
        return self.lam / self.rho


class Covariances(NamedTuple):
    r"""Population (or empirical) second moments of a two-view pair.

    Attributes:
      xx: $\Sigma_{xx} = E[x x^\top]$, shape `(d, d)`.
      yx: $\Sigma_{yx} = E[y x^\top]$, shape `(d, d)`.
      yy: $\Sigma_{yy} = E[y y^\top]$, shape `(d, d)`.
    """

    xx: Float[Array, "d d"]
    yx: Float[Array, "d d"]
    yy: Float[Array, "d d"]


def mode_spec(
    lam: Float[ArrayLike, " k"],
    rho: Float[ArrayLike, " k"],
    y_var: Float[ArrayLike, " k"] | None = None,
    *,
    dtype: DTypeLike | None = None,
) -> ModeSpec:
    r"""Validated per-mode spec $(\lambda, \rho, E[y^2])$.

    Args:
      lam: cross-covariances $\lambda$, shape `(k,)`, each $> 0$.
      rho: regression coefficients $\rho$, shape `(k,)`, each $> 0$.
      y_var: target variances, shape `(k,)`. Default: $\sigma^2 = \lambda/\rho$ (the
        two views share a marginal), which needs $\rho \le 1$.
      dtype: float dtype; default: that of the inputs (or the default float).

    Returns:
      A `ModeSpec` with arrays of shape `(k,)`.

    Raises:
      ValueError: on a rank or length mismatch, a non-positive or NaN `lam` or `rho`,
        or `y_var < lam * rho` (the joint covariance of the pair would not be PSD).
        Values are checked only when concrete (not under `jit`/`vmap`).
    """
    lam = as_float(lam, dtype)
    rho = as_float(rho, dtype if dtype is not None else lam.dtype)
    check_ndim("lam", lam, 1, "(k,)")
    check_ndim("rho", rho, 1, "(k,)")
    if lam.shape != rho.shape:
        raise ValueError(
            f"rho: expected shape {lam.shape} (that of lam); got {rho.shape}"
        )
    check_positive("lam", lam)
    check_positive("rho", rho)
    if y_var is None:
        if is_concrete(rho) and np.any(np.asarray(rho) > 1):
            raise ValueError(
                "y_var: the default E[y^2] = lam/rho (shared marginals) needs rho <= 1;"
                f" got max rho {float(np.max(rho))!r}. Pass y_var >= lam * rho."
            )
        y_var = lam / rho
    y_var = as_float(y_var, lam.dtype)
    if y_var.shape != lam.shape:
        raise ValueError(
            f"y_var: expected shape {lam.shape} (that of lam); got {y_var.shape}"
        )
    check_finite("y_var", y_var)
    if is_concrete((lam, rho, y_var)):
        need = np.asarray(lam) * np.asarray(rho)
        if np.any(np.asarray(y_var) < need * (1 - 1e-6)):
            raise ValueError(
                "y_var: joint covariance not PSD, expected y_var >= lam * rho per mode;"
                f" got y_var={y_var.tolist()} vs lam*rho={need.tolist()}"
            )
    return ModeSpec(lam, rho, y_var)


def population_covariances(spec: ModeSpec) -> Covariances:
    r"""Diagonal population covariances of a `ModeSpec` (eigenbasis = identity).

    Args:
      spec: per-mode moments, arrays of shape `(k,)`.

    Returns:
      `Covariances` with $\Sigma_{xx} = \mathrm{diag}(\lambda/\rho)$,
      $\Sigma_{yx} = \mathrm{diag}(\lambda)$, $\Sigma_{yy} = \mathrm{diag}(E[y^2])$,
      each of shape `(k, k)`.
    """
    return Covariances(jnp.diag(spec.x_var), jnp.diag(spec.lam), jnp.diag(spec.y_var))


def check_covariances(name: str | None, cov: Covariances, *, xx_definite: bool) -> None:
    r"""Raises `ValueError` unless concrete covariances are finite and jointly PSD.

    Any leading batch axes of the `(..., d, d)` leaves are checked entry by entry.
    With `xx_definite`, $\Sigma_{xx}$ must also be positive definite. Skipped for
    traced values (under `jit`/`vmap`).
    """
    if not is_concrete(cov):
        return
    xx, yx, yy = (np.asarray(m) for m in cov)
    d = xx.shape[-1]
    prefix = f"{name}." if name else ""
    for part, m in (("xx", xx), ("yx", yx), ("yy", yy)):
        if m.shape != xx.shape or m.shape[-2:] != (d, d):
            raise ValueError(
                f"{prefix}{part}: expected shape {xx.shape} (as xx); got {m.shape}"
            )
        check_finite(prefix + part, m)
    flat = [m.reshape(-1, d, d) for m in (xx, yx, yy)]
    for i, (xx_, yx_, yy_) in enumerate(zip(*flat, strict=True)):
        at = f" [batch entry {i}]" if xx.ndim > 2 else ""
        if xx_definite:
            check_psd(f"{prefix}xx{at}", xx_, strict=True)
        check_psd(f"{prefix}yy{at}", yy_)
        joint = np.block([[xx_, yx_.T], [yx_, yy_]])
        check_psd(f"{name or 'covariances'} (joint [[xx, xy], [yx, yy]]){at}", joint)


def covariances(
    xx: Float[ArrayLike, "d d"],
    yx: Float[ArrayLike, "d d"],
    yy: Float[ArrayLike, "d d"],
    *,
    dtype: DTypeLike | None = None,
) -> Covariances:
    r"""Validated general (not necessarily diagonal) covariances of two views.

    Args:
      xx: $\Sigma_{xx}$, shape `(d, d)`, symmetric positive definite.
      yx: $\Sigma_{yx} = E[y x^\top]$, shape `(d, d)`.
      yy: $\Sigma_{yy}$, shape `(d, d)`, symmetric.
      dtype: float dtype; default: that of `xx`.

    Returns:
      `Covariances`.

    Raises:
      ValueError: on shape mismatch, NaN, a non-symmetric or non-positive-definite
        `xx`, or a joint matrix $[[\Sigma_{xx}, \Sigma_{xy}], [\Sigma_{yx},
        \Sigma_{yy}]]$ that is not PSD (checked when concrete).
    """
    xx = as_float(xx, dtype)
    yx = as_float(yx, xx.dtype)
    yy = as_float(yy, xx.dtype)
    check_ndim("xx", xx, 2, "(d, d)")
    d = xx.shape[0]
    for name, m in (("xx", xx), ("yx", yx), ("yy", yy)):
        if m.shape != (d, d):
            raise ValueError(f"{name}: expected shape ({d}, {d}); got {m.shape}")
    check_covariances(None, Covariances(xx, yx, yy), xx_definite=True)
    return Covariances(xx, yx, yy)


def check_per_mode(name: str, ref, **others) -> None:
    """Raises `ValueError` unless `ref` is `(k,)` and the others have its shape."""
    check_ndim(name, ref, 1, "(k,)")
    for other, arr in others.items():
        check_shape(other, arr, np.shape(ref), f"(k,) = {np.shape(ref)} as {name}")


def static_two_view(
    gamma: Float[ArrayLike, " k"], noise_var: Float[ArrayLike, " k"]
) -> ModeSpec:
    r"""Modes of the static model: two noisy views of one latent.

    $z \sim N(0, \mathrm{diag}\,\gamma)$, $x = z + \xi$, $y = z + \xi'$ with independent
    $\xi, \xi' \sim N(0, \mathrm{diag}\, n^2)$. Then $\lambda = \gamma$,
    $\rho = \gamma / (\gamma + n^2)$ (a signal-to-noise ratio), $E[y^2] = \gamma + n^2$.

    Args:
      gamma: latent variances, shape `(k,)`, positive.
      noise_var: view-noise variances $n^2$, shape `(k,)`, non-negative.

    Returns:
      The `ModeSpec` of the pair.

    References:
      Littwin et al. 2024, arXiv:2407.03475 (static linear model; this parametrisation
      is jaxfeat's); claim LSSL-12.
    """
    gamma = as_float(gamma)
    noise_var = as_float(noise_var, gamma.dtype)
    check_per_mode("gamma", gamma, noise_var=noise_var)
    check_positive("gamma", gamma)
    check_positive("noise_var", noise_var, strict=False)
    var = gamma + noise_var
    return mode_spec(gamma, gamma / var, var)


def dynamic_ar1(
    ar: Float[ArrayLike, " k"],
    state_var: Float[ArrayLike, " k"],
    noise_var: Float[ArrayLike, " k"],
) -> ModeSpec:
    r"""Modes of the dynamic model: consecutive frames of a noisy AR(1) process.

    $z_{t+1} = a z_t + \sqrt{s^2 (1 - a^2)}\, e_t$ (stationary variance $s^2$),
    observed as $x_t = z_t + \xi_t$ with $\xi_t \sim N(0, n^2)$; the views are
    $x = x_t$, $y = x_{t+1}$. Then $\lambda = a s^2$, $\rho = a s^2 / (s^2 + n^2)$ and
    $E[y^2] = s^2 + n^2$: slow ($a \to 1$) and clean features have high $\rho$.

    Args:
      ar: autoregression coefficients $a$, shape `(k,)`, in $(0, 1)$.
      state_var: stationary latent variances $s^2$, shape `(k,)`, positive.
      noise_var: observation-noise variances $n^2$, shape `(k,)`, non-negative.

    Returns:
      The `ModeSpec` of the pair $(x_t, x_{t+1})$.

    References:
      Littwin et al. 2024, arXiv:2407.03475 (dynamic linear model; parametrisation is
      jaxfeat's); Sobal et al. 2022, arXiv:2211.10831; claim LSSL-12.
    """
    ar = as_float(ar)
    state_var = as_float(state_var, ar.dtype)
    noise_var = as_float(noise_var, ar.dtype)
    check_per_mode("ar", ar, state_var=state_var, noise_var=noise_var)
    check_in_range("ar", ar, 0.0, 1.0)
    check_positive("state_var", state_var)
    check_positive("noise_var", noise_var, strict=False)
    var = state_var + noise_var
    lam = ar * state_var
    return mode_spec(lam, lam / var, var)


def generalized_modes(
    cov: Covariances,
) -> tuple[Float[Array, " k"], Float[Array, " k"], Float[Array, "k k"]]:
    r"""Generalised eigenmodes $\Sigma_{yx} v = \rho\, \Sigma_{xx} v$ of covariances.

    For simultaneously diagonalisable covariances these are the modes of
    `population_covariances`; otherwise they are the natural per-feature
    regression coefficients (the symmetric part of $\Sigma_{yx}$ is used).

    Args:
      cov: covariances with $\Sigma_{xx}$ positive definite, each `(d, d)`.

    Returns:
      `(lam, rho, vectors)`: $\lambda_i = \rho_i v_i^\top \Sigma_{xx} v_i$ and $\rho_i$
      (shape `(d,)`, sorted by decreasing $\rho$), and unit-norm eigenvectors as
      columns,
      shape `(d, d)`.

    Raises:
      ValueError: if the covariances hold NaN or $\Sigma_{xx}$ is not positive
        definite (checked when concrete).
    """
    for part, m in zip(("xx", "yx", "yy"), cov, strict=True):
        check_finite(f"cov.{part}", m)
    check_psd("cov.xx", cov.xx, strict=True)
    return _generalized_modes(cov)


@jax.jit
def _generalized_modes(cov):
    evals, evecs = linalg.eigh(cov.xx)
    # xx is positive definite (checked by the caller when concrete).
    inv_sqrt = (evecs / jnp.sqrt(evals)[None]) @ evecs.T
    sym = 0.5 * (cov.yx + cov.yx.T)
    rho, w = linalg.eigh(inv_sqrt @ sym @ inv_sqrt)
    vecs = inv_sqrt @ w
    vecs = vecs / jnp.linalg.norm(vecs, axis=0, keepdims=True)
    order = jnp.argsort(-rho)
    rho, vecs = rho[order], vecs[:, order]
    mu = jnp.einsum("ik,ij,jk->k", vecs, cov.xx, vecs)
    return rho * mu, rho, vecs


def diagonalization_defect(cov: Covariances) -> Float[Array, ""]:
    r"""How far $\Sigma_{xx}$ and $\Sigma_{yx}$ are from sharing an eigenbasis.

    $\|\Sigma_{xx}\Sigma_{yx} - \Sigma_{yx}\Sigma_{xx}\|_F /
    (\|\Sigma_{xx}\|_F \|\Sigma_{yx}\|_F)$: zero exactly when two symmetric matrices
    commute, i.e. are simultaneously diagonalisable (0 when either is 0, which
    commutes with everything).

    Args:
      cov: covariances, each `(d, d)`.

    Returns:
      A non-negative scalar.

    Raises:
      ValueError: if `cov.xx` and `cov.yx` are not square of one shape, or (when
        concrete) hold NaN or infinity.
    """
    d = np.shape(cov.xx)[-1] if np.ndim(cov.xx) else None
    for part in ("xx", "yx"):
        m = getattr(cov, part)
        check_shape(f"cov.{part}", m, (d, d), "(d, d), d from cov.xx")
        check_finite(f"cov.{part}", m)
    return _diagonalization_defect(cov.xx, cov.yx)


@jax.jit
def _diagonalization_defect(xx, yx):
    comm = xx @ yx - yx @ xx
    den = jnp.linalg.norm(xx) * jnp.linalg.norm(yx)
    return jnp.where(den > 0, jnp.linalg.norm(comm) / jnp.where(den > 0, den, 1), 0.0)
