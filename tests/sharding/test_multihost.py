"""Two processes under `jax.distributed` (2 CPU devices each, gloo collectives on
localhost) give the scores and sweeps of one process.

`np.asarray` of a global array spanning the other process's devices raised in the
scores' value checks, and `device_put` of typed PRNG keys onto the global mesh
raised in `shard_batch`: the README's multi-host claim did not hold.
"""

import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxfeat._src.testing import cpu_devices_env

SCRIPT = textwrap.dedent(
    """
    import sys
    pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if pid >= 0:
        jax.distributed.initialize(
            coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid
        )
    import jax.numpy as jnp, numpy as np
    import jaxfeat
    from jaxfeat import influence, ntk
    from jax.experimental import multihost_utils

    def host_values(a):  # the global array's values on this host
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    mlp = ntk.MLPConfig(in_dim=3, widths=(4,), out_dim=3, activation="tanh")
    params = ntk.init_mlp(jax.random.key(0), mlp)
    x = jax.random.normal(jax.random.key(1), (8, 3))
    y = jax.random.randint(jax.random.key(2), (8,), 0, 3)
    st = influence.fit_curvature(mlp, params, x, y,
                                 cfg=influence.IHVPConfig(strategy="ekfac"))
    full = influence.pairwise_scores(st, params, x[:2], y[:2], x, y)  # 8 on 4: no pad
    chunked = influence.pairwise_scores(st, params, x[:2], y[:2], x[:7], y[:7],
                                        chunk_size=3)
    self_s = influence.self_scores(st, params, x, y)
    keys = jax.random.split(jax.random.key(0), 5)  # typed keys through shard_batch
    draws = jaxfeat.sharded_vmap(lambda k: jax.random.normal(k))(keys)
    np.savez(out, full=host_values(full), chunked=host_values(chunked),
             self_s=host_values(self_s), draws=host_values(draws),
             devices=jax.device_count())
    if pid >= 0:
        jax.distributed.shutdown()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SCRIPT,
                str(pid),
                port,
                str(tmp_path / f"{pid}.npz"),
            ],
            env=cpu_devices_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for pid in (0, 1)
    ]
    logs = [p.communicate(timeout=300)[0].decode()[-2000:] for p in procs]
    if any(p.returncode for p in procs) and not all("[Gloo] Rank" in g for g in logs):
        # the processes never connected: no gloo collectives (or no localhost)
        pytest.skip(f"no multi-process CPU runtime here: {logs[0][-300:]}")
    assert all(p.returncode == 0 for p in procs), logs
    single = tmp_path / "single.npz"
    subprocess.run(
        [sys.executable, "-c", SCRIPT, "-1", "0", str(single)],
        env=cpu_devices_env(1),
        check=True,
        capture_output=True,
        timeout=300,
    )
    ref = dict(np.load(single))
    assert int(ref["devices"]) == 1
    for pid in (0, 1):
        got = dict(np.load(tmp_path / f"{pid}.npz"))
        assert int(got["devices"]) == 4
        for name in ("full", "chunked", "self_s", "draws"):
            # float32: the sharded reductions sum in another order (1e-5 relative)
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-6)


def test_scalar_batched_argument_raises_value_error():
    """A 0-d batched argument raised IndexError from np.shape(leaf)[0]."""
    import jax.numpy as jnp

    import jaxfeat

    with pytest.raises(ValueError, match="leading .batch. axis; got a scalar"):
        jaxfeat.sharded_vmap(lambda a, b: a + b)(jnp.ones(()), jnp.ones(4))
    out = jaxfeat.sharded_vmap(lambda a, b: a + b, in_axes=(None, 0))(
        jnp.ones(()), jnp.arange(4.0)
    )
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0, 4.0])
