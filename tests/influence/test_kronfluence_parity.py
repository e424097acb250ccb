"""Optional parity with kronfluence 1.0.1 on a sequence model (skipped without it).

The same per-token two-layer network (PyTorch `nn.Linear` over the last axis; in
jaxfeat a plain function whose dense layers are found in its jaxpr), the same data
and matched settings: EK-FAC, empirical Fisher, per-layer damping 0.1 x mean(Lambda),
loss summed over tokens. Both libraries' sequence scores and token-wise scores must
agree per query (float32 throughout, kronfluence's eigendecompositions in float64:
Pearson >= 0.999, relative Frobenius error <= 1e-5; measured 7e-7 and 9e-7).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import influence

N, T, D, H, K = 24, 5, 4, 6, 3


def _apply(params, x):
    h = jnp.tanh(x @ params["w1"] + params["b1"][None])
    return h @ params["w2"] + params["b2"][None]


def _problem():
    ks = jax.random.split(jax.random.key(0), 6)
    params = {
        "w1": jax.random.normal(ks[0], (D, H)) / np.sqrt(D),
        "b1": 0.1 * jax.random.normal(ks[1], (H,)),
        "w2": jax.random.normal(ks[2], (H, K)) / np.sqrt(H),
        "b2": 0.1 * jax.random.normal(ks[3], (K,)),
    }
    x = jax.random.normal(ks[4], (N, T, D))
    y = jax.random.randint(ks[5], (N, T), 0, K)
    return params, x, y


def _kronfluence_scores(params, x, y, xq, yq, workdir, per_token):
    torch = pytest.importorskip("torch")
    pytest.importorskip("kronfluence")
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    class SeqTask(Task):
        def compute_train_loss(self, batch, model, sample=False):
            xb, yb = batch
            logits = model(xb)
            return torch.nn.functional.cross_entropy(
                logits.reshape(-1, K), yb.reshape(-1), reduction="sum"
            )

        def compute_measurement(self, batch, model):
            return self.compute_train_loss(batch, model)

    model = torch.nn.Sequential(
        torch.nn.Linear(D, H), torch.nn.Tanh(), torch.nn.Linear(H, K)
    )
    with torch.no_grad():
        for lin, w, b in ((model[0], "w1", "b1"), (model[2], "w2", "b2")):
            lin.weight.copy_(torch.tensor(np.asarray(params[w]).T))
            lin.bias.copy_(torch.tensor(np.asarray(params[b])))
    task = SeqTask()
    model = prepare_model(model, task)
    analyzer = Analyzer(
        "parity", model, task, cpu=True, disable_tqdm=True, output_dir=str(workdir)
    )
    data = lambda a, b: torch.utils.data.TensorDataset(
        torch.tensor(np.asarray(a)), torch.tensor(np.asarray(b), dtype=torch.long)
    )
    analyzer.fit_all_factors(
        "f",
        data(x, y),
        per_device_batch_size=N,
        factor_args=FactorArguments(strategy="ekfac", use_empirical_fisher=True),
        overwrite_output_dir=True,
    )
    analyzer.compute_pairwise_scores(
        "s",
        "f",
        data(xq, yq),
        data(x, y),
        per_device_query_batch_size=len(xq),
        per_device_train_batch_size=N,
        score_args=ScoreArguments(
            damping_factor=None, compute_per_token_scores=per_token
        ),
        overwrite_output_dir=True,
    )
    return analyzer.load_pairwise_scores("s")["all_modules"].numpy()


def _pearson_rows(a, b):
    a = a.reshape(a.shape[0], -1) - a.reshape(a.shape[0], -1).mean(1, keepdims=True)
    b = b.reshape(b.shape[0], -1) - b.reshape(b.shape[0], -1).mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # kronfluence's torch.cuda.amp
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("per_token", [False, True])
def test_sequence_scores_match_kronfluence(tmp_path, per_token):
    params, x, y = _problem()
    xq, yq = x[:4], y[:4]
    ref = _kronfluence_scores(params, x, y, xq, yq, tmp_path, per_token)
    cfg = influence.IHVPConfig(strategy="ekfac", fisher="empirical")
    state = influence.fit_curvature(_apply, params, x, y, cfg=cfg)
    got = np.asarray(
        influence.pairwise_scores(state, params, xq, yq, x, y, per_token=per_token)
    )
    assert got.shape == ref.shape
    assert np.min(_pearson_rows(got, ref)) >= 0.999
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) <= 1e-5  # measured 8e-7
