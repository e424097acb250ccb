r"""Samplers for the two-view Gaussian models, and empirical covariances.

References:
  Littwin et al. 2024, arXiv:2407.03475 (static and dynamic linear models);
  theory/linear_ssl.md, claim LSSL-12.
"""

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from jaxfeat._src import linalg
from jaxfeat._src.arrays import as_float
from jaxfeat._src.checks import (
    check_count,
    check_in_range,
    check_positive,
)
from jaxfeat._src.typing import PRNGKey
from jaxfeat.linear_ssl._data import Covariances, check_covariances, check_per_mode


def sample_views(
    key: PRNGKey, cov: Covariances, n: int
) -> tuple[Float[Array, "n d"], Float[Array, "n d"]]:
    r"""Draws $n$ zero-mean Gaussian pairs $(x, y)$ with the given joint covariance.

    The joint matrix $[[\Sigma_{xx}, \Sigma_{xy}], [\Sigma_{yx}, \Sigma_{yy}]]$ is
    factorised by a symmetric eigendecomposition; eigenvalues below zero (round-off of
    a PSD matrix: a concrete input that is not PSD beyond round-off raises) are
    clipped to zero.

    Args:
      key: PRNG key.
      cov: covariances, each `(d, d)`, jointly PSD.
      n: number of pairs.

    Returns:
      `(x, y)`, each of shape `(n, d)`.

    Raises:
      ValueError: if `n < 1`, or the covariances hold NaN or are not jointly PSD
        (checked when concrete).

    References:
      NumPy equivalent: `numpy.random.Generator.multivariate_normal`.
    """
    check_count("n", n, 1)
    check_covariances("cov", cov, xx_definite=False)
    return _sample_views(key, cov, n)


@functools.partial(jax.jit, static_argnames=("n",))
def _sample_views(key, cov, n):
    d = cov.xx.shape[0]
    joint = jnp.block([[cov.xx, cov.yx.T], [cov.yx, cov.yy]])
    evals, evecs = linalg.eigh(joint)
    root = evecs * jnp.sqrt(jnp.clip(evals, 0.0))[None]  # joint = root @ root.T
    z = jax.random.normal(key, (n, 2 * d), dtype=cov.xx.dtype)
    xy = z @ root.T
    return xy[:, :d], xy[:, d:]


def sample_static_two_view(
    key: PRNGKey,
    gamma: Float[ArrayLike, " k"],
    noise_var: Float[ArrayLike, " k"],
    n: int,
) -> tuple[Float[Array, "n k"], Float[Array, "n k"]]:
    r"""Draws $n$ pairs of the static model $x = z + \xi$, $y = z + \xi'$.

    Args:
      key: PRNG key.
      gamma: latent variances, shape `(k,)`, positive.
      noise_var: view-noise variances, shape `(k,)`, non-negative.
      n: number of pairs.

    Returns:
      `(x, y)`, each of shape `(n, k)`; their moments are `static_two_view(gamma,
      noise_var)`.
    """
    gamma = as_float(gamma)
    noise_var = as_float(noise_var, gamma.dtype)
    check_per_mode("gamma", gamma, noise_var=noise_var)
    check_positive("gamma", gamma)
    check_positive("noise_var", noise_var, strict=False)
    check_count("n", n, 1)
    return _sample_static(key, gamma, noise_var, n)


@functools.partial(jax.jit, static_argnames=("n",))
def _sample_static(key, gamma, noise_var, n):
    kz, kx, ky = jax.random.split(key, 3)
    shape = (n, gamma.shape[0])
    z = jnp.sqrt(gamma)[None] * jax.random.normal(kz, shape, gamma.dtype)
    x = z + jnp.sqrt(noise_var)[None] * jax.random.normal(kx, shape, gamma.dtype)
    y = z + jnp.sqrt(noise_var)[None] * jax.random.normal(ky, shape, gamma.dtype)
    return x, y


def sample_dynamic_ar1(
    key: PRNGKey,
    ar: Float[ArrayLike, " k"],
    state_var: Float[ArrayLike, " k"],
    noise_var: Float[ArrayLike, " k"],
    n_steps: int,
) -> Float[Array, "t k"]:
    r"""Draws one stationary trajectory $x_1, \dots, x_T$ of the noisy AR(1) model.

    $z_{t+1} = a z_t + \sqrt{s^2(1-a^2)}\,e_t$ with $z_1 \sim N(0, s^2)$, and
    $x_t = z_t + \xi_t$. Consecutive frames `(x[:-1], x[1:])` are the two views whose
    moments are `dynamic_ar1(ar, state_var, noise_var)`.

    Args:
      key: PRNG key.
      ar: autoregression coefficients, shape `(k,)`, in $(0, 1)$.
      state_var: stationary latent variances $s^2$, shape `(k,)`, positive.
      noise_var: observation-noise variances, shape `(k,)`, non-negative.
      n_steps: trajectory length $T \ge 2$.

    Returns:
      Observations, shape `(T, k)`.
    """
    ar = as_float(ar)
    state_var = as_float(state_var, ar.dtype)
    noise_var = as_float(noise_var, ar.dtype)
    check_per_mode("ar", ar, state_var=state_var, noise_var=noise_var)
    check_in_range("ar", ar, 0.0, 1.0)
    check_positive("state_var", state_var)
    check_positive("noise_var", noise_var, strict=False)
    check_count("n_steps", n_steps, 2)
    return _sample_dynamic(key, ar, state_var, noise_var, n_steps)


@functools.partial(jax.jit, static_argnames=("n_steps",))
def _sample_dynamic(key, ar, state_var, noise_var, n_steps):
    k0, ke, kn = jax.random.split(key, 3)
    shape = (n_steps, ar.shape[0])
    z0 = jnp.sqrt(state_var) * jax.random.normal(k0, ar.shape, ar.dtype)
    scale = jnp.sqrt(state_var * (1 - ar**2))[None]
    innov = scale * jax.random.normal(ke, shape, ar.dtype)

    def step(z, e):
        return ar * z + e, z

    _, z = jax.lax.scan(step, z0, innov)
    return z + jnp.sqrt(noise_var)[None] * jax.random.normal(kn, shape, ar.dtype)


def empirical_covariances(
    x: Float[ArrayLike, "n d"], y: Float[ArrayLike, "n d"]
) -> Covariances:
    r"""Uncentred sample second moments of paired views.

    $\hat\Sigma_{xx} = X^\top X / n$, $\hat\Sigma_{yx} = Y^\top X / n$,
    $\hat\Sigma_{yy} = Y^\top Y / n$ (unbiased for the zero-mean models here).

    Args:
      x: context views, shape `(n, d)`.
      y: target views, shape `(n, d)`.

    Returns:
      `Covariances`, each `(d, d)`.
    """
    x = as_float(x)
    y = as_float(y, x.dtype)
    if x.ndim != 2 or y.shape != x.shape:
        raise ValueError(
            f"y: expected shape {x.shape} (that of x, which must be (n, d)); "
            f"got x {x.shape}, y {y.shape}"
        )
    n = x.shape[0]
    return Covariances(x.T @ x / n, y.T @ x / n, y.T @ y / n)
