r"""The two-feature generative framework of shortcut learning.

Each example has a core latent $z_c$ and a shortcut latent $z_s$; labels
$y \in \{-1, +1\}$ are balanced and $z \mid y \sim N(y\mu, \Sigma)$ with
$\mu_i = \sqrt2\,\mathrm{erf}^{-1}(2\rho_i - 1)$ (so $P(\mathrm{sign}\, z_i = y) =
\rho_i$, the feature's *predictivity*) and
$\Sigma = [[1, \sigma_{sc}], [\sigma_{sc}, 1]]$.
*Availability* is set by amplification $\alpha_i$ and nesting depth $\eta_i$: the
input is $x = e_s + e_c \in \mathbb R^d$ with $e_i = \alpha_i z_i w_i$ (a fixed
direction $w_i$) when $\eta_i = 0$, or a random $\eta_i$-layer tanh network applied to
$\alpha_i z_i$ and mapped into $\mathbb R^d$ when $\eta_i > 0$.

References:
  Hermann, Mobahi, Fel & Mozer 2024, "On the Foundations of Shortcut Learning",
  arXiv:2310.16228 (Sec. 2); parameter values from spec ntk_shortcut.md Sec. 1
  (third-party reimplementation, flagged there). Claims NTK-5, NTK-9.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erfinv
from jaxtyping import Array, ArrayLike, Float, Int

from jaxfeat._src import linalg
from jaxfeat._src.arrays import as_float
from jaxfeat._src.checks import (
    check_count,
    check_finite,
    check_in_range,
    check_int_at_least,
    check_positive,
)
from jaxfeat._src.typing import PRNGKey, Scalar


def latent_means(
    rho: Float[ArrayLike, "..."], *, name: str = "rho"
) -> Float[Array, "..."]:
    r"""Class means $\mu = \sqrt2\,\mathrm{erf}^{-1}(2\rho - 1)$, so $\Phi(\mu) = \rho$.

    Args:
      rho: predictivities in $(0.5, 1)$, any shape.
      name: the argument name used in error messages (e.g. `"rho_s"`).

    Returns:
      Means, the same shape.

    Raises:
      ValueError: for `rho` outside $(0.5, 1)$ (checked when concrete).
    """
    rho = as_float(rho)
    check_in_range(name, rho, 0.5, 1.0)
    return jnp.sqrt(2.0) * erfinv(2 * rho - 1)


class Embedding(NamedTuple):
    r"""A fixed map from the two latents to $\\mathbb R^d$.

    Attributes:
      directions: unit directions `(2, d)` for (shortcut, core), used when a feature
        is not nested.
      nest_hidden: per feature, the tanh layers' weights `(2, eta_max, h, h)` (the
        first layer reads the scalar from column 0), biases `(2, eta_max, h)`.
      nest_out: per feature, the readout `(2, h, d)`.
      nesting: per feature, the number of tanh layers $\\eta_i$ (`(2,)` int32).
    """

    directions: Float[Array, "2 d"]
    nest_hidden: Float[Array, "2 e h h"]
    nest_bias: Float[Array, "2 e h"]
    nest_out: Float[Array, "2 h d"]
    nesting: Int[Array, " 2"]


def make_embedding(
    key: PRNGKey,
    d: int,
    *,
    orthonormal: bool = True,
    nesting: tuple[int, ...] = (0, 0),
    nest_width: int = 16,
) -> Embedding:
    r"""Samples the embedding: directions and (optional) random nesting networks.

    Args:
      key: PRNG key.
      d: input dimension (>= 2).
      orthonormal: directions from a QR factorisation (exactly orthogonal), else
        independent Gaussian directions normalised to unit length.
      nesting: tanh-layer counts $(\\eta_s, \\eta_c)$ of the nesting networks, two
        integers >= 0.
      nest_width: width of the nesting networks, >= 1.

    Returns:
      An `Embedding`.

    Raises:
      ValueError: for `d < 2`, a `nesting` that is not two integers >= 0, or
        `nest_width < 1`.
    """
    check_count("d", d, 2)
    nesting = tuple(nesting)
    if len(nesting) != 2:
        raise ValueError(
            f"nesting: expected two layer counts (eta_s, eta_c); got {nesting!r}"
        )
    for eta in nesting:
        check_int_at_least("nesting", eta, 0)
    check_count("nest_width", nest_width, 1)
    nesting = tuple(int(eta) for eta in nesting)
    return _make_embedding(
        key, d=d, orthonormal=orthonormal, nesting=nesting, nest_width=int(nest_width)
    )


@functools.partial(
    jax.jit, static_argnames=("d", "orthonormal", "nesting", "nest_width")
)
def _make_embedding(key, *, d, orthonormal, nesting, nest_width):
    k_dir, k_net = jax.random.split(key)
    g = jax.random.normal(k_dir, (d, 2))
    if orthonormal:
        q, r = linalg.qr(g)
        dirs = (q * jnp.sign(jnp.diagonal(r))[None]).T
    else:
        dirs = (g / jnp.linalg.norm(g, axis=0, keepdims=True)).T
    e_max = max(max(nesting), 1)
    # the first layer reads one scalar (column 0), so it gets unit-variance weights
    k_first, k_deep, k_bias, k_out = jax.random.split(k_net, 4)
    hidden = jax.random.normal(k_deep, (2, e_max, nest_width, nest_width))
    hidden = hidden / jnp.sqrt(nest_width)
    first = jax.random.normal(k_first, (2, nest_width, nest_width))
    hidden = hidden.at[:, 0].set(first)
    bias = 0.1 * jax.random.normal(k_bias, (2, e_max, nest_width))
    out = jax.random.normal(k_out, (2, nest_width, d)) / jnp.sqrt(nest_width)
    return Embedding(dirs, hidden, bias, out, jnp.asarray(nesting, jnp.int32))


def _feature(emb, i, a):
    """Embedding of the amplified scalar feature `a` (shape `(n,)`) of feature i."""
    linear = a[:, None] * emb.directions[i][None]
    h = jnp.zeros((a.shape[0], emb.nest_hidden.shape[-1]), a.dtype).at[:, 0].set(a)
    for layer in range(emb.nest_hidden.shape[1]):
        h_new = jnp.tanh(h @ emb.nest_hidden[i, layer] + emb.nest_bias[i, layer][None])
        h = jnp.where(layer < emb.nesting[i], h_new, h)
    nested = h @ emb.nest_out[i]
    return jnp.where(emb.nesting[i] > 0, nested, linear)


def embed(
    z: Float[Array, "n 2"], emb: Embedding, alpha_s: Scalar, alpha_c: Scalar
) -> Float[Array, "n d"]:
    r"""Inputs $x = e_s(\alpha_s z_s) + e_c(\alpha_c z_c)$ for latents `z`.

    Args:
      z: latents, shape `(n, 2)`, column 0 the shortcut $z_s$, column 1 the core.
      emb: the embedding.
      alpha_s: shortcut amplification $\alpha_s > 0$.
      alpha_c: core amplification $\alpha_c > 0$.

    Returns:
      Inputs, shape `(n, d)`.

    Raises:
      ValueError: for non-positive `alpha_s`/`alpha_c`, `z` not `(n, 2)`, or a
        non-finite `z` (values checked when concrete).
    """
    check_positive("alpha_s", alpha_s)
    check_positive("alpha_c", alpha_c)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"z: expected shape (n, 2); got {z.shape}")
    check_finite("z", z)
    return _embed(z, emb, alpha_s, alpha_c)


@jax.jit
def _embed(z, emb, alpha_s, alpha_c):
    return _feature(emb, 0, alpha_s * z[:, 0]) + _feature(emb, 1, alpha_c * z[:, 1])


def sample_latents(
    key: PRNGKey, n: int, *, rho_s: Scalar, rho_c: Scalar, sigma_sc: Scalar = 0.0
) -> tuple[Float[Array, "n 2"], Float[Array, " n"]]:
    r"""Balanced labels and latents $z \mid y \sim N(y\mu, \Sigma)$.

    Args:
      key: PRNG key.
      n: number of examples (even: exactly half per class).
      rho_s: shortcut predictivity in $(0.5, 1)$.
      rho_c: core predictivity in $(0.5, 1)$.
      sigma_sc: within-class correlation of $(z_s, z_c)$, in $(-1, 1)$.

    Returns:
      `(z, y)`: latents `(n, 2)` (shortcut, core) and labels `(n,)` in $\{-1, +1\}$.
    """
    check_count("n", n, 2)
    if n % 2:
        raise ValueError(f"n: expected an even number (balanced classes); got {n}")
    check_in_range("sigma_sc", sigma_sc, -1.0, 1.0)
    mu = jnp.stack(
        [latent_means(rho_s, name="rho_s"), latent_means(rho_c, name="rho_c")]
    )
    return _sample_latents(key, mu, jnp.asarray(sigma_sc, mu.dtype), n=n)


@functools.partial(jax.jit, static_argnames=("n",))
def _sample_latents(key, mu, sigma_sc, *, n):
    ky, kz = jax.random.split(key)
    y = jax.random.permutation(ky, jnp.repeat(jnp.array([1.0, -1.0]), n // 2))
    y = y.astype(mu.dtype)
    e = jax.random.normal(kz, (n, 2), mu.dtype)
    # Cholesky of [[1, s], [s, 1]]
    noise = jnp.stack(
        [e[:, 0], sigma_sc * e[:, 0] + jnp.sqrt(1 - sigma_sc**2) * e[:, 1]], axis=1
    )
    return y[:, None] * mu[None] + noise, y


class ShortcutData(NamedTuple):
    """Inputs `x` `(n, d)`, labels `y` `(n,)` and latents `z` `(n, 2)`."""

    x: Float[Array, "n d"]
    y: Float[Array, " n"]
    z: Float[Array, "n 2"]


def sample_shortcut_data(
    key: PRNGKey,
    n: int,
    emb: Embedding,
    *,
    rho_s: Scalar,
    rho_c: Scalar,
    alpha_s: Scalar,
    alpha_c: Scalar = 1.0,
    sigma_sc: Scalar = 0.0,
) -> ShortcutData:
    """Samples a shortcut data set: latents, labels and embedded inputs.

    Args:
      key: PRNG key.
      n: number of examples (even).
      emb: the embedding (shared by train, validation and probe sets).
      rho_s: shortcut predictivity.
      rho_c: core predictivity.
      alpha_s: shortcut amplification.
      alpha_c: core amplification.
      sigma_sc: within-class latent correlation.

    Returns:
      `ShortcutData(x, y, z)`.
    """
    z, y = sample_latents(key, n, rho_s=rho_s, rho_c=rho_c, sigma_sc=sigma_sc)
    return ShortcutData(embed(z, emb, alpha_s, alpha_c), y, z)
