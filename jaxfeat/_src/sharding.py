"""Batch sweeps sharded over every visible device with `jax.sharding`.

A sweep puts its configurations on a leading batch axis, pads that axis to a multiple
of the device count, lays it out over a one-axis mesh (`NamedSharding(mesh,
P("batch"))`) and runs one jitted `vmap`; XLA partitions the computation along the
data. Under `jax.distributed.initialize()`, `jax.devices()` spans every host, so the
same code runs multi-host.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def device_mesh(devices: Sequence | None = None, axis_name: str = "batch") -> Mesh:
    """A one-axis mesh over `devices` (default: every device of the default backend)."""
    devs = np.asarray(jax.devices() if devices is None else list(devices))
    return Mesh(devs, (axis_name,))


def batch_size(tree) -> int:
    """The shared leading size of every leaf of `tree`; raises if they differ."""
    leaves = jax.tree_util.tree_leaves(tree)
    scalars = [i for i, leaf in enumerate(leaves) if np.ndim(leaf) == 0]
    if scalars:
        raise ValueError(
            "batched arguments must have a leading (batch) axis; got a scalar (pass "
            "in_axes=None for an argument that is not batched)"
        )
    sizes = {np.shape(leaf)[0] for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(
            "batched arguments must share one leading (batch) size; "
            f"got {sorted(sizes)}"
        )
    return sizes.pop()


def shard_batch(tree, mesh: Mesh | None = None):
    """Pads the leading axis of every leaf to a multiple of the mesh size and shards it.

    Padding repeats the last entry (a valid configuration, so no NaNs appear).

    Returns:
      `(placed_tree, n)` where `n` is the unpadded batch size (see `unpad`).
    """
    mesh = device_mesh() if mesh is None else mesh
    n = batch_size(tree)
    n_pad = -n % mesh.devices.size
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))

    def put(leaf):
        leaf = jnp.asarray(leaf)
        if n_pad:
            leaf = jnp.concatenate([leaf, jnp.repeat(leaf[-1:], n_pad, axis=0)])
        if isinstance(leaf, jax.core.Tracer):
            # under jit a constraint; under eager autodiff a device_put would commit
            # the primal to the mesh while other operands stay on device 0, and the
            # cotangents (committed to both) could not be added
            return jax.lax.with_sharding_constraint(leaf, sharding)
        return _put_global(leaf, sharding)

    return jax.tree_util.tree_map(put, tree), n


def _put_global(leaf, sharding: NamedSharding):
    """`device_put` that also works when the mesh spans other processes' devices.

    Multi-host, every process holds the whole batch (SPMD): the global array is
    assembled from each process's addressable shards (`device_put` of a local or
    committed array, typed PRNG keys included, onto a global sharding raises).
    """
    if sharding.is_fully_addressable or not leaf.is_fully_addressable:
        return jax.device_put(leaf, sharding)
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _put_global(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def unpad(tree, n: int):
    """Drops the padding added by `shard_batch` (keeps the first `n` entries)."""
    return jax.tree_util.tree_map(lambda leaf: leaf[:n], tree)


def sharded_vmap(
    fn: Callable,
    *,
    in_axes: Sequence[int | None] | int = 0,
    devices: Sequence | None = None,
) -> Callable:
    """`jax.vmap(fn, in_axes)` with the batch axis sharded over a device mesh.

    Build it once and call it many times: it holds one jitted program.

    Args:
      fn: function of one configuration.
      in_axes: 0 (batched on the leading axis) or None (broadcast) per positional
        argument, or one value for all.
      devices: devices to use; default every device of the default backend.

    Returns:
      A function taking `fn`'s arguments with a leading batch axis on the batched ones
      and returning `fn`'s outputs stacked on axis 0, as `jax.vmap` does.

    Raises:
      ValueError: if an entry of `in_axes` is not 0 or None, or batched arguments have
        different leading sizes.
    """
    jitted = jax.jit(jax.vmap(fn, in_axes=in_axes))

    def run(*args):
        axes = (in_axes,) * len(args) if isinstance(in_axes, int | None) else in_axes
        if len(axes) != len(args) or any(ax not in (0, None) for ax in axes):
            raise ValueError(
                f"in_axes: expected 0 or None for each of {len(args)} arguments; "
                f"got {in_axes!r}"
            )
        mesh = device_mesh(devices)
        batched = [a for a, ax in zip(args, axes, strict=True) if ax == 0]
        placed, n = shard_batch(batched, mesh)
        replicated = NamedSharding(mesh, PartitionSpec())
        it = iter(placed)
        full = [
            next(it) if ax == 0 else jax.device_put(a, replicated)
            for a, ax in zip(args, axes, strict=True)
        ]
        return unpad(jitted(*full), n)

    return run
