"""LAPACK-backed linear algebra that does not hang when vmapped on a multi-device CPU.

jaxlib 0.10.x (XLA:CPU) runs a batched LAPACK call (eigh, SVD, least squares, LU
solve, Cholesky, QR, triangular solve) by scheduling chunks of the batch on the
intra-op thread pool and blocking the calling pool thread until they finish. The pool
has one thread per CPU device (at least one per core). In a sweep sharded over CPU
devices every device reaches the same batched call at about the same time, every pool
thread blocks, and no thread is left to run the chunks: the process hangs for good.
Measured on the 2-core CI machine with 4 forced devices: a sharded sweep of
`ntk.kernel_shortcut_bias` (a vmapped `eigh`) hung in 7 of 8 runs. jaxlib 0.11.1
compiled that path out of its open-source builds.

The functions here are the `jnp.linalg` ones with one change on the affected jaxlib
versions: under `vmap` on CPU they loop over the batch (`lax.map`, one unbatched
LAPACK call per element, which jaxlib runs inline) instead of issuing one batched
call. Elsewhere (other backends, jaxlib >= 0.11.1, no `vmap`) they are the plain
functions. Their derivatives are the plain functions' (a JVP rule), so `grad` and
`jvp` work; `vmap` of a derivative batches the plain call.
"""

import functools
import importlib.metadata

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax import lax


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def _affected(jaxlib_version: str) -> bool:
    """True for jaxlib versions whose CPU LAPACK kernels block on batch chunks."""
    return (0, 10, 0) <= _version(jaxlib_version) < (0, 11, 1)


AFFECTED = _affected(importlib.metadata.version("jaxlib"))


def _looped_on_cpu(fn):
    """`fn` (arrays in, pytree of arrays out) whose `vmap` loops on CPU."""

    @jax.custom_batching.custom_vmap
    def looped(*args):
        return fn(*args)

    @looped.def_vmap
    def _rule(axis_size, in_batched, *args):
        del axis_size
        idx = [i for i, b in enumerate(in_batched) if b]

        def call(f, xs):
            full = list(args)
            for i, x in zip(idx, xs, strict=True):
                full[i] = x
            return f(*full)

        def loop(*batched):
            # `looped`, not `fn`: an outer `vmap` of this loop comes back here.
            return lax.map(functools.partial(call, looped), list(batched))

        def vectorised(*batched):
            return jax.vmap(functools.partial(call, fn))(list(batched))

        out = lax.platform_dependent(
            *[args[i] for i in idx], cpu=loop, default=vectorised
        )
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return looped


def _vmap_safe(fn):
    """`fn` with the CPU batching fix when this jaxlib needs it (module docstring)."""
    if not AFFECTED:
        return fn
    looped = _looped_on_cpu(fn)

    @jax.custom_jvp
    def safe(*args):
        return looped(*args)

    @safe.defjvp
    def _jvp(primals, tangents):
        return jax.jvp(fn, primals, tangents)

    return functools.wraps(fn)(safe)


@_vmap_safe
def eigh(a):
    """`jnp.linalg.eigh(a)` as `(eigenvalues, eigenvectors)`; `a` is `(n, n)`."""
    w, v = jnp.linalg.eigh(a)
    return w, v


@_vmap_safe
def lstsq(a, b):
    """The least-squares solution `jnp.linalg.lstsq(a, b)[0]` (default rcond)."""
    return jnp.linalg.lstsq(a, b)[0]


@_vmap_safe
def solve(a, b):
    """`jnp.linalg.solve(a, b)`."""
    return jnp.linalg.solve(a, b)


@_vmap_safe
def cholesky(a):
    """`jnp.linalg.cholesky(a)` (lower triangular)."""
    return jnp.linalg.cholesky(a)


@_vmap_safe
def solve_lower(a, b):
    """`jax.scipy.linalg.solve_triangular(a, b, lower=True)`."""
    return jsl.solve_triangular(a, b, lower=True)


@_vmap_safe
def svd(a):
    """`jnp.linalg.svd(a, full_matrices=False)` as `(u, s, vt)`."""
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    return u, s, vt


@_vmap_safe
def qr(a):
    """`jnp.linalg.qr(a)` (reduced) as `(q, r)`."""
    q, r = jnp.linalg.qr(a)
    return q, r
