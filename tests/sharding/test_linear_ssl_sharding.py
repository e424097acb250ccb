"""Sweeps give the same numbers sharded over 4 forced CPU devices as on one device."""

import textwrap

import numpy as np

from jaxfeat._src.testing import run_on_cpu_devices

SWEEP = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    import jaxfeat
    from jaxfeat import linear_ssl as ls

    n = 6  # not a multiple of 4: exercises the padding path
    lam = jnp.linspace(0.6, 1.4, 2 * n).reshape(n, 2)
    rho = jnp.linspace(0.4, 1.0, 2 * n).reshape(n, 2)[::-1]
    spec = lambda a, b: ls.population_covariances(ls.mode_spec(a, b))
    covs = jax.vmap(spec)(lam, rho)
    depth = jnp.array([1, 2, 3, 1, 2, 3])
    init = lambda L: ls.init_aligned(1e-2, d=2, depth=L, max_depth=3)
    params = jax.vmap(init)(depth)
    cfg = ls.GDConfig(objective="jepa", n_steps=400, log_every=100)
    final, log = ls.sweep_gd(jax.vmap(ls.init_gd)(params), covs, 0.1, cfg=cfg,
                             depth=depth, n_chunks=2, progress=False)
    crit = jaxfeat.sharded_vmap(
        lambda a, b, L: ls.critical_time(a, b, 1e-3, L, objective="mae", max_depth=3),
        in_axes=(0, 0, 0))(lam, rho, depth)
    np.savez(sys.argv[1], encoder=np.asarray(log.encoder),
             V=np.asarray(final.params.V), crit=np.asarray(crit),
             devices=jax.device_count(),
             shards=len(final.params.V.sharding.device_set))
    """
)


def _run(tmp_path, n_devices):
    out = tmp_path / f"sweep_{n_devices}.npz"
    return run_on_cpu_devices(SWEEP, out, n_devices)


def test_sweep_sharded_over_four_devices_matches_one(tmp_path):
    one, four = _run(tmp_path, 1), _run(tmp_path, 4)
    assert int(one["devices"]) == 1 and int(four["devices"]) == 4
    assert int(four["shards"]) == 4  # the sweep really ran on all four devices
    # float32, same math partitioned differently: the identity tolerance.
    for name in ("encoder", "V", "crit"):
        np.testing.assert_allclose(four[name], one[name], rtol=1e-5, atol=1e-6)
