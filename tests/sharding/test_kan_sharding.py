"""Cross-validated KAN scores: 5 folds sharded over 4 forced CPU devices == 1 device."""

import textwrap

import numpy as np

from jaxfeat._src.testing import run_on_cpu_devices

SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    from jaxfeat import kan

    x = np.asarray(jax.random.normal(jax.random.key(0), (40, 4)))
    y = (x[:, 0] + x[:, 1] ** 2 > 0.5).astype(np.int32)
    folds = kan.kfold_indices(jax.random.key(1), y, 5)  # 5 folds on 4 devices: padded
    cfg = kan.KANConfig(widths=(4, 5, 2), grid_size=3, order=2)
    tc = kan.KANTrainConfig(epochs=4, batch_size=8, learning_rate=1e-2)
    cv = kan.crossval_feature_scores(jax.random.key(2), x, y, folds, cfg=cfg,
                                     train_cfg=tc, methods=("kan_l1", "kan_ko"))
    np.savez(sys.argv[1], l1=np.asarray(cv.per_fold["kan_l1"]),
             ko=np.asarray(cv.per_fold["kan_ko"]), loss=np.asarray(cv.final_loss),
             devices=jax.device_count())
    """
)


def _run(tmp_path, n_devices):
    return run_on_cpu_devices(SCRIPT, tmp_path / f"kan_{n_devices}.npz", n_devices)


def test_crossval_scores_sharded_over_four_devices_match_one(tmp_path):
    one, four = _run(tmp_path, 1), _run(tmp_path, 4)
    assert int(one["devices"]) == 1 and int(four["devices"]) == 4
    # float32, the same per-fold programs partitioned differently: identity tolerance
    for name in ("l1", "ko", "loss"):
        np.testing.assert_allclose(four[name], one[name], rtol=1e-5, atol=1e-6)
