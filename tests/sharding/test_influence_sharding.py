"""Influence scores: training chunks sharded over 4 forced CPU devices == 1 device."""

import textwrap

import numpy as np

from jaxfeat._src.testing import run_on_cpu_devices

SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from jaxfeat import influence, ntk

    mlp = ntk.MLPConfig(in_dim=3, widths=(4,), out_dim=3, activation="tanh")
    params = ntk.init_mlp(jax.random.key(0), mlp)
    x = jax.random.normal(jax.random.key(1), (11, 3))  # 11 on 4 devices: padded
    y = jax.random.randint(jax.random.key(2), (11,), 0, 3)
    cfg = influence.IHVPConfig(strategy="ekfac")
    state = influence.fit_curvature(mlp, params, x, y, cfg=cfg)
    s = influence.pairwise_scores(state, params, x[:3], y[:3], x, y, chunk_size=5)
    self_s = influence.self_scores(state, params, x, y, chunk_size=5)
    # a sequence model (per-token layers found in its jaxpr): token-wise scores
    seq = lambda p, xi: jnp.tanh(xi @ p["w"] + p["b"][None]) @ p["v"]
    ps = {"w": jnp.ones((3, 4)) * 0.3, "b": jnp.arange(4.0) / 4,
          "v": jax.random.normal(jax.random.key(3), (4, 3))}
    xs = jax.random.normal(jax.random.key(4), (11, 6, 3))
    ys = jax.random.randint(jax.random.key(5), (11, 6), 0, 3)
    st = influence.fit_curvature(seq, ps, xs, ys, cfg=cfg, chunk_size=5)  # streamed
    tok = influence.pairwise_scores(st, ps, xs[:2], ys[:2], xs, ys, chunk_size=5,
                                    per_token=True)
    # eager grad through the fit and chunked scores: the chunks' device_put
    # committed x to the mesh and the unchunked fit's operands to device 0, and
    # adding their cotangents failed on more than one device
    def total(xx):
        st = influence.fit_curvature(mlp, params, xx, y, cfg=cfg)
        return influence.pairwise_scores(st, params, x[:3], y[:3], xx, y,
                                         chunk_size=5).sum()
    g = jax.grad(total)(x)
    np.savez(sys.argv[1], s=np.asarray(s), self_s=np.asarray(self_s),
             tok=np.asarray(tok), g=np.asarray(g), devices=jax.device_count())
    """
)


def _run(tmp_path, n_devices):
    return run_on_cpu_devices(
        SCRIPT, tmp_path / f"influence_{n_devices}.npz", n_devices
    )


def test_scores_sharded_over_four_devices_match_one(tmp_path):
    one, four = _run(tmp_path, 1), _run(tmp_path, 4)
    assert int(one["devices"]) == 1 and int(four["devices"]) == 4
    # float32, the same per-example programs partitioned differently: identity tol.
    assert one["tok"].shape == (2, 11, 6)  # from factors streamed over the devices
    for name in ("s", "self_s"):
        np.testing.assert_allclose(four[name], one[name], rtol=1e-5, atol=1e-6)
    # the input gradient of the summed scores: same programs, float32 round-off
    # relative to its largest entry
    scale = float(np.abs(one["g"]).max())
    np.testing.assert_allclose(four["g"], one["g"], rtol=1e-4, atol=1e-5 * scale)
    # the token scores come from factors summed over devices in another order:
    # float32 round-off relative to the largest score
    scale = float(np.abs(one["tok"]).max())
    np.testing.assert_allclose(four["tok"], one["tok"], rtol=1e-5, atol=1e-5 * scale)
