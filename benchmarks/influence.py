"""EK-FAC influence end to end: jaxfeat against kronfluence 1.0.1 on the same MLP.

The same trained MLP (digits, 64 -> 128 -> 10 ReLU, standard parameterisation) and the
same data go to both libraries. Each fits EK-FAC factors on the training set and scores
every query against every training example, with matched settings: the empirical
Fisher (true labels, so both are deterministic), per-layer heuristic damping
0.1 x mean(Lambda) and float32 scores with float64 eigendecompositions. Reported:

* time to fit the factors and to score all pairs, median over repeats (jaxfeat's
  first call, which compiles, is reported separately: median over this process and
  `--fresh-processes` fresh interpreters);
* `speedup_vs_kronfluence` = kronfluence end-to-end time / jaxfeat end-to-end time
  (steady state: compiled programs reused, as when scoring many query sets), and
  `speedup_incl_compile_vs_kronfluence` against jaxfeat's first call;
* the per-query Pearson correlation between the two libraries' score rows;
* jaxfeat's second call, which recompiles the programs its first call compiled for
  compile speed (`jaxfeat/_src/compile_options.py`) with XLA's defaults.
"""

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._timing import out_path, stats, write_json
from jaxfeat import influence, ntk


def _data(n_train, n_query):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    x, y = x.astype(np.float32), y.astype(np.int32)
    return x[:n_train], y[:n_train], x[-n_query:], y[-n_query:]


def _train(cfg, x, y, steps):
    params = ntk.init_mlp(jax.random.key(0), cfg)
    opt = optax.adam(1e-2)

    def loss(p):
        out = jax.vmap(lambda xi: ntk.mlp_apply(p, xi, cfg))(x)
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

    @jax.jit
    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, steps)
    return params


def _jaxfeat_run(cfg, params, xtr, ytr, xq, yq):
    icfg = influence.IHVPConfig(strategy="ekfac", fisher="empirical", damping=None)
    t0 = time.perf_counter()
    state = jax.block_until_ready(
        influence.fit_curvature(cfg, params, xtr, ytr, cfg=icfg)
    )
    t1 = time.perf_counter()
    scores = jax.block_until_ready(
        influence.pairwise_scores(state, params, xq, yq, xtr, ytr)
    )
    t2 = time.perf_counter()
    return np.asarray(scores), t1 - t0, t2 - t1


def _kronfluence_run(params, xtr, ytr, xq, yq, workdir):
    import torch
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    torch.set_num_threads(max(1, torch.get_num_threads()))

    class Classify(Task):
        def compute_train_loss(self, batch, model, sample=False):
            x, y = batch
            return torch.nn.functional.cross_entropy(model(x), y, reduction="sum")

        def compute_measurement(self, batch, model):
            x, y = batch
            return torch.nn.functional.cross_entropy(model(x), y, reduction="sum")

    (l1, l2) = params
    model = torch.nn.Sequential(
        torch.nn.Linear(l1.w.shape[0], l1.w.shape[1]),
        torch.nn.ReLU(),
        torch.nn.Linear(l2.w.shape[0], l2.w.shape[1]),
    )
    with torch.no_grad():
        for lin, lay in ((model[0], l1), (model[2], l2)):
            lin.weight.copy_(torch.tensor(np.asarray(lay.w).T))
            lin.bias.copy_(torch.tensor(np.asarray(lay.b)))
    task = Classify()
    model = prepare_model(model, task)
    analyzer = Analyzer(
        "bench", model, task, cpu=True, disable_tqdm=True, output_dir=str(workdir)
    )
    train = torch.utils.data.TensorDataset(
        torch.tensor(xtr), torch.tensor(ytr, dtype=torch.long)
    )
    query = torch.utils.data.TensorDataset(
        torch.tensor(xq), torch.tensor(yq, dtype=torch.long)
    )
    fargs = FactorArguments(strategy="ekfac", use_empirical_fisher=True)
    t0 = time.perf_counter()
    analyzer.fit_all_factors(
        "f",
        train,
        per_device_batch_size=len(xtr),
        factor_args=fargs,
        overwrite_output_dir=True,
    )
    t1 = time.perf_counter()
    analyzer.compute_pairwise_scores(
        "s",
        "f",
        query,
        train,
        per_device_query_batch_size=len(xq),
        per_device_train_batch_size=len(xtr),
        score_args=ScoreArguments(damping_factor=None),
        overwrite_output_dir=True,
    )
    t2 = time.perf_counter()
    scores = analyzer.load_pairwise_scores("s")["all_modules"].numpy()
    return scores, t1 - t0, t2 - t1


def _fresh_first_calls(n_train, n_query):
    """Times jaxfeat's first and second call in a fresh interpreter (cold caches)."""
    cmd = [sys.executable, "-m", "benchmarks.influence", "--first-call-only"]
    cmd += ["--n-train", str(n_train), "--n-query", str(n_query)]
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        cmd, cwd=root, capture_output=True, text=True, check=True
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("FIRST_CALLS "))
    return json.loads(line.removeprefix("FIRST_CALLS "))


def _pearson_rows(a, b):
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, no kronfluence")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-query", type=int, default=200)
    ap.add_argument(
        "--out",
        default=None,
        help="JSON path (default benchmarks/results/NAME.json; --smoke: a temp dir)",
    )
    ap.add_argument(
        "--fresh-processes",
        type=int,
        default=4,
        help="more first-call samples, each in a fresh interpreter (0 with --smoke)",
    )
    ap.add_argument("--first-call-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    reference = None if args.smoke else importlib.util.find_spec("kronfluence")
    if not args.smoke and not args.first_call_only and reference is None:
        # without the reference the headline (speedup, Pearson) cannot be measured
        msg = (
            "kronfluence is not installed (`pip install torch==2.13.0 "
            "kronfluence==1.0.1`): the comparison is skipped"
        )
        if args.out is None:
            ap.error(f"{msg}; refusing to overwrite benchmarks/results/influence.json")
        print(f"warning: {msg}", file=sys.stderr)
    args.out = str(out_path(args.out, "influence", args.smoke))
    n_train, n_query, repeats = args.n_train, args.n_query, args.repeats
    if args.smoke:
        n_train, n_query, repeats = 120, 10, 2
    cfg = ntk.MLPConfig(
        in_dim=64, widths=(128,), out_dim=10, parameterization="standard"
    )
    xtr, ytr, xq, yq = _data(n_train, n_query)
    steps = 50 if args.smoke else 300
    # Block: the training runs asynchronously and must not count as jaxfeat's time.
    params = jax.block_until_ready(
        _train(cfg, jnp.asarray(xtr), jnp.asarray(ytr), steps)
    )
    print(f"devices: {jax.devices()}  train {n_train}  queries {n_query}")

    first_calls, second_calls = [], []
    for calls in (first_calls, second_calls):  # the second compiles the fast tier
        t0 = time.perf_counter()
        _jaxfeat_run(cfg, params, xtr, ytr, xq, yq)
        calls.append(time.perf_counter() - t0)
    if args.first_call_only:
        print("FIRST_CALLS " + json.dumps([first_calls[0], second_calls[0]]))
        return None
    for _ in range(0 if args.smoke else args.fresh_processes):
        first, second = _fresh_first_calls(n_train, n_query)
        first_calls.append(first)
        second_calls.append(second)
    first_call = float(np.median(first_calls))
    jf = {"fit": [], "score": [], "total": []}
    kf = {"fit": [], "score": [], "total": []}
    kscores = None
    have_kf = reference is not None
    for _ in range(repeats):
        scores, tf, ts = _jaxfeat_run(cfg, params, xtr, ytr, xq, yq)
        jf["fit"].append(tf)
        jf["score"].append(ts)
        jf["total"].append(tf + ts)
        if have_kf:
            work = Path(tempfile.mkdtemp(prefix="kf_"))
            try:
                kscores, kt, ks = _kronfluence_run(params, xtr, ytr, xq, yq, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            kf["fit"].append(kt)
            kf["score"].append(ks)
            kf["total"].append(kt + ks)

    rows = []
    for lib, times in (("jaxfeat", jf), ("kronfluence", kf)):
        for stage, samples in times.items():
            if samples:
                rows.append({"library": lib, "stage": stage, **stats(samples)})
    for stage, t in (
        ("first_call_incl_compile", first_calls),
        ("second_call_recompiles", second_calls),
    ):
        rows.append({"library": "jaxfeat", "stage": stage, **stats(t)})
    summary = {
        "n_train": n_train,
        "n_query": n_query,
        "jaxfeat_total_s": float(np.median(jf["total"])),
        "jaxfeat_first_call_s": first_call,
        "jaxfeat_second_call_s": float(np.median(second_calls)),
        "first_call_samples": len(first_calls),
    }
    if kscores is not None:
        r = _pearson_rows(np.asarray(scores, np.float64), kscores.astype(np.float64))
        summary.update(
            kronfluence_total_s=float(np.median(kf["total"])),
            speedup_vs_kronfluence=float(
                np.median(kf["total"]) / np.median(jf["total"])
            ),
            speedup_incl_compile_vs_kronfluence=float(
                np.median(kf["total"]) / first_call
            ),
            kronfluence_first_call_s=float(kf["total"][0]),
            speedup_fit_vs_kronfluence=float(
                np.median(kf["fit"]) / np.median(jf["fit"])
            ),
            speedup_score_vs_kronfluence=float(
                np.median(kf["score"]) / np.median(jf["score"])
            ),
            pearson_vs_kronfluence_min=float(r.min()),
            pearson_vs_kronfluence_mean=float(r.mean()),
        )
    print(f"{'library':<12} {'stage':<24} {'median s':>10} {'min':>10} {'max':>10}")
    for row in rows:
        print(
            f"{row['library']:<12} {row['stage']:<24} {row['median']:>10.4g} "
            f"{row['min']:>10.4g} {row['max']:>10.4g}"
        )
    for k, v in summary.items():
        print(f"{k:<32} {v:.4g}" if isinstance(v, float) else f"{k:<32} {v}")
    write_json(args.out, "influence", rows, summary)
    print(f"wrote {args.out}")
    return summary


if __name__ == "__main__":
    main()
