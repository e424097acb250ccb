"""Streaming over the training set: padded chunks sharded over every device.

Every chunk has one padded shape (one compile); padded rows repeat the last example
(valid inputs) and are dropped (`stream_concat`) or weighted 0 (`stream_sum`).
"""

import jax
import jax.numpy as jnp

from jaxfeat._src.arrays import leading
from jaxfeat._src.progress import run_chunks
from jaxfeat._src.sharding import device_mesh, shard_batch


def _chunking(n, chunk_size):
    mesh = device_mesh()
    chunk = n if chunk_size is None else min(chunk_size, n)
    chunk += -chunk % mesh.devices.size
    return mesh, chunk, -(-n // chunk)


def _padded(a, lo, chunk):
    part = a[lo : lo + chunk]
    pad = chunk - part.shape[0]
    if pad:
        part = jnp.concatenate([part, jnp.repeat(part[-1:], pad, axis=0)])
    return part


def stream_concat(fn, x, y, chunk_size, progress, desc, check):
    """Runs `fn(n_chunks, x_chunk, y_chunk)` over padded chunks sharded over devices.

    `n_chunks` (the same for every chunk) lets `fn` size its compile (`CostAwareJit`).
    `check(out)` validates each chunk's output (e.g. `check_finite` naming the
    caller's argument for `x`).
    """
    mesh, chunk, n_chunks = _chunking(x.shape[0], chunk_size)

    def step(carry, i):
        lo = i * chunk
        m = min(chunk, x.shape[0] - lo)  # real rows; padding repeats the last one
        (xs, ys), _ = shard_batch((_padded(x, lo, chunk), _padded(y, lo, chunk)), mesh)
        out = fn(n_chunks, xs, ys)  # example axis last
        out = leading(out, m, axis=-1)  # drop the padded rows
        check(out)
        return carry, out

    _, outs = run_chunks(step, None, n_chunks, desc=desc, progress=progress)
    return outs[0] if n_chunks == 1 else jnp.concatenate(outs, axis=-1)


def stream_sum(fn, x, y, extras, chunk_size, progress, desc):
    """Sum over chunks of `fn(n_chunks, x_c, y_c, extras_c, valid_c)` (a pytree).

    `extras` is a pytree of per-example arrays (e.g. PRNG keys) chunked with `x`;
    `valid_c` is 1 for real rows and 0 for padding, which `fn` must weight by.
    """
    n = x.shape[0]
    mesh, chunk, n_chunks = _chunking(n, chunk_size)

    def step(total, i):
        lo = i * chunk
        valid = (lo + jnp.arange(chunk) < n).astype(jnp.int32)
        parts = jax.tree_util.tree_map(lambda a: _padded(a, lo, chunk), (x, y, extras))
        (xs, ys, es, vs), _ = shard_batch((*parts, valid), mesh)
        out = fn(n_chunks, xs, ys, es, vs)
        total = out if total is None else jax.tree_util.tree_map(jnp.add, total, out)
        return total, None

    total, _ = run_chunks(step, None, n_chunks, desc=desc, progress=progress)
    return total
