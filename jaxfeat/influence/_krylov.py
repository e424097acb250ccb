"""Krylov helpers of the matrix-free curvature strategies (power iteration, Arnoldi).

References:
  Schioppa et al. 2022, arXiv:2112.03052 (Arnoldi influence); spec `influence.md`.
"""

import math

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from jaxfeat._src import linalg


def start_vector(p: int, dtype) -> Array:
    """Unit start vector of the Krylov iterations: `cos(pi phi (i + 1))`, phi golden.

    Deterministic (no PRNG key) and generic: an irrational rotation per coordinate
    has no structure to align with a curvature's null space. The all-ones vector
    used before lies in that of a softmax model (a shift of every logit), where
    power iteration stalled at the damping and LiSSA's scale came out too small.
    """
    golden = (1 + math.sqrt(5)) / 2
    v = jnp.cos(math.pi * golden * jnp.arange(1, p + 1, dtype=dtype))
    return v / jnp.linalg.norm(v)


def power_iteration(matvec, v0, n_iter: int = 30) -> Array:
    """Rayleigh quotient after `n_iter` power steps (largest |eigenvalue| estimate)."""

    def body(_, v):
        w = matvec(v)
        return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(w.dtype).tiny)

    v = lax.fori_loop(0, n_iter, body, v0 / jnp.linalg.norm(v0))
    return jnp.vdot(v, matvec(v))


def arnoldi(matvec, p: int, n_iter: int, rank: int, dtype) -> tuple[Array, Array]:
    """Top-`rank` eigenpairs (by magnitude) of a symmetric operator from Arnoldi.

    Full re-orthogonalisation (two Gram-Schmidt passes) keeps the Krylov basis
    orthonormal; the start vector is `start_vector` (deterministic, generic).
    At most `p` steps run: a basis of R^p has at most `p` vectors. The Krylov space
    can close early (a curvature of rank r < `n_iter` - 1, e.g. few examples): when
    the new direction is round-off (`beta <= 100 eps |G q_j|`) the space is invariant
    and its Ritz pairs exact, so the iteration restarts (with a zero sub-diagonal
    entry) from the coordinate vector least represented in the basis, orthogonalised:
    deterministic, and at least sqrt(1 - (j + 1)/p) of it survives. Normalising the
    round-off instead gave spurious basis vectors and Ritz values above the largest
    eigenvalue. Eigenpairs are kept by |eigenvalue|: for an indefinite
    Hessian the large negative ones dominate the damped inverse as much as the large
    positive ones (as Schioppa et al.'s `distill`).
    """
    n_iter = min(n_iter, p)
    basis = jnp.zeros((n_iter + 1, p), dtype).at[0].set(start_vector(p, dtype))
    hess = jnp.zeros((n_iter + 1, n_iter), dtype)
    tol = 100 * jnp.finfo(dtype).eps

    def orthogonalise(basis, w, mask):  # two classical Gram-Schmidt passes
        h = (basis @ w) * mask
        w = w - basis.T @ h
        h2 = (basis @ w) * mask
        return w - basis.T @ h2, h + h2

    def body(j, carry):
        basis, hess = carry
        gq = matvec(basis[j])
        mask = (jnp.arange(n_iter + 1) <= j).astype(dtype)
        w, h = orthogonalise(basis, gq, mask)
        beta = jnp.linalg.norm(w)
        closed = beta <= tol * jnp.linalg.norm(gq)

        def restart():
            weight = mask @ basis**2  # how much of each coordinate the basis holds
            r = jax.nn.one_hot(jnp.argmin(weight), p, dtype=dtype)
            r, _ = orthogonalise(basis, r, mask)
            r_norm = jnp.linalg.norm(r)
            return jnp.where(r_norm > tol, r / r_norm, 0.0)  # 0: the basis spans R^p

        # the restart's extra Gram-Schmidt runs only when the space closed
        nxt = lax.cond(
            closed, restart, lambda: w / jnp.maximum(beta, jnp.finfo(dtype).tiny)
        )
        hess = hess.at[:, j].set(h).at[j + 1, j].set(jnp.where(closed, 0.0, beta))
        return basis.at[j + 1].set(nxt), hess

    basis, hess = lax.fori_loop(0, n_iter, body, (basis, hess))
    h = hess[:n_iter]
    evals, evecs = linalg.eigh(0.5 * (h + h.T))
    top = jnp.argsort(-jnp.abs(evals))[:rank]
    return basis[:n_iter].T @ evecs[:, top], evals[top]  # (p, rank), (rank,)
