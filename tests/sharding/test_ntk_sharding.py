"""Shortcut-bias sweeps: cells sharded over 4 forced CPU devices == 1 device.

Also the regression test of `jaxfeat._src.linalg`: with jaxlib 0.10's batched CPU
LAPACK kernels, this sweep (a vmapped `eigh` inside `kernel_shortcut_bias`) hung in 7
of 8 runs on 4 forced devices; the subprocess timeout turns a hang into a failure.
"""

import textwrap

import numpy as np

from jaxfeat._src.testing import run_on_cpu_devices

SWEEP = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    import jaxfeat
    from jaxfeat import ntk

    emb = ntk.make_embedding(jax.random.key(0), 8)
    net = ntk.MLPConfig(in_dim=8, widths=(32,), activation="relu")
    train = ntk.TrainConfig(steps=60, batch_size=None, eval_every=20)
    grid = ntk.probe_grid(0.9, 0.8, n=10)

    # 5 cells (not a multiple of 4: exercises the padding path) of (rho_s, alpha_s).
    rho_s = jnp.array([0.7, 0.8, 0.9, 0.95, 0.85])
    alpha_s = jnp.array([0.5, 1.0, 2.0, 1.5, 3.0])

    def one_cell(r, a):
        tr = ntk.sample_shortcut_data(jax.random.key(1), 64, emb, rho_s=r,
                                      rho_c=0.8, alpha_s=a)
        xg = ntk.embed(grid, emb, a, 1.0)
        opt = ntk.lda_decision(ntk.lda_fit(tr.x, tr.y), xg)

        def one_seed(k):
            res = ntk.train_classifier(k, tr.x, tr.y, tr.x, tr.y, 0.01,
                                       net=net, train=train)
            out = jax.vmap(lambda x: ntk.mlp_apply(res.final, x, cfg=net))(xg)
            return ntk.shortcut_bias(out[:, 0], opt, grid), res.train_loss

        bias, loss = jax.vmap(one_seed)(jax.random.split(jax.random.key(2), 2))
        k_tt = tr.x @ tr.x.T
        k_gt = xg @ tr.x.T
        kbias = ntk.kernel_shortcut_bias(k_tt, k_gt, tr.y, jnp.array([0.1, 10.0]),
                                         grid, opt)
        return bias, loss, kbias

    bias, loss, kbias = jaxfeat.sharded_vmap(one_cell)(rho_s, alpha_s)
    np.savez(sys.argv[1], bias=np.asarray(bias), loss=np.asarray(loss),
             kbias=np.asarray(kbias), devices=jax.device_count(),
             shards=len(loss.sharding.device_set))
    """
)


def _run(tmp_path, n_devices):
    out = tmp_path / f"ntk_{n_devices}.npz"
    return run_on_cpu_devices(SWEEP, out, n_devices, timeout=120)


def test_bias_sweep_sharded_over_four_devices_matches_one(tmp_path):
    one, four = _run(tmp_path, 1), _run(tmp_path, 4)
    assert int(one["devices"]) == 1 and int(four["devices"]) == 4
    assert int(four["shards"]) == 4  # the sweep really ran on all four devices
    assert one["bias"].shape == (5, 2) and one["kbias"].shape == (5, 2)
    # The losses are continuous: float32 round-off of the same math partitioned
    # differently, the identity tolerance.
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-5, atol=1e-6)
    # Biases count signs on a 10x10 grid (steps of 0.01 per point): a point exactly
    # on a decision boundary could flip under round-off, so allow one grid point.
    np.testing.assert_allclose(four["bias"], one["bias"], atol=0.011)
    np.testing.assert_allclose(four["kbias"], one["kbias"], atol=0.011)
    # The cells really differ (a sweep that ignored its inputs would pass the above).
    assert np.ptp(one["kbias"][:, 0]) > 0.5
