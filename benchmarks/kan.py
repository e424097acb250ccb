r"""Benchmark of `jaxfeat.kan`: training throughput vs pykan and jaxkan, CV scoring.

1. Steady-state training throughput (samples/s) of a `[64, 129, 10]` KAN (grid 5,
   order 3, no bias), minibatch Adam (batch 256, lr 1e-3, cross-entropy) on sklearn
   digits (1797 x 64, standardised), the last partial batch kept:
   - jaxfeat `train_kan` under `jax.jit` (one `lax.scan` over epochs and batches),
     with the default Cox–de Boor basis (`jaxfeat`) and with `basis="uniform"`
     (`jaxfeat_uniform`: closed-form cardinal B-splines, valid here because the
     benchmark, like the references, trains on the initial uniform grid);
   - pykan 0.2.8 `MultKAN(..., symbolic_enabled=False, auto_save=False).speed()` in
     a torch Adam loop over minibatches (`torch.set_num_threads(os.cpu_count())`);
   - jaxkan 0.3.7 `KAN(layer_type="spline", add_bias=False)`: a jitted train step of
     `nnx.split` state + optax Adam, called from a Python loop over minibatches.
   Each repeat runs a fixed number of epochs (fewer for the slow references); times
   are interleaved, compile / warm-up reported separately. `speedup_vs_X` is X's
   median seconds per sample over jaxfeat's fastest configuration (`uniform`);
   `speedup_de_boor_vs_X` uses the default basis. Throughput counts real samples only
   (jaxfeat also computes the zero-weight padding of its last batch).
2. Achieved FLOP/s of the jaxfeat training as a fraction of a float32 `jnp.dot`
   peak measured in the same run. FLOPs are counted analytically, matmuls only: with
   `m_l = d_l H_l (G + K + 1)` the multiply-adds of layer `l` (basis and SiLU
   features times the scaled coefficients and base weights),

   $$\mathrm{FLOPs/sample} = 2\sum_l m_l\;(\text{forward})
      + 2\sum_l m_l\;(\text{weight grads}) + 2\sum_{l\ge 2} m_l\;(\text{input grads}),$$

   the first layer needing no input gradient. The B-spline recursion, SiLU, softmax
   and Adam are not counted, so the fraction is a lower bound.
3. `crossval_feature_scores` with kan_l1, kan_l2, kan_si, kan_ko over 5 folds on
   digits (n_class=3, 537 x 64) with the paper's KAN (widths (64, 129, 3), G = 2,
   K = 1, Adam, 100 epochs, batch 64): first call (compile included), repeated calls,
   and the scoring alone (the four public selectors jitted together, on the five
   validation folds, with untrained parameters: the cost does not depend on them).

Targets (reported, not asserted): >= 10x pykan, >= 2x jaxkan.

    python -m benchmarks.kan [--smoke] [--no-reference] [--repeats 3] [--out PATH]
"""

import argparse
import contextlib
import functools
import importlib.metadata
import importlib.util
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import (
    interleave,
    matmul_peak,
    out_path,
    print_table,
    stats,
    write_json,
)
from jaxfeat import kan

SIZES = {
    "smoke": dict(
        widths=(64, 16, 10),
        n_train=512,
        epochs=dict(jaxfeat=1, jaxfeat_uniform=1, jaxkan=1, pykan=1),
        cv_widths=(64, 16, 3),
        cv_epochs=1,
        cv_n=500,  # equal validation folds: one scoring program to compile
        peak_n=256,
    ),
    "default": dict(
        widths=(64, 129, 10),
        n_train=None,
        epochs=dict(jaxfeat=40, jaxfeat_uniform=40, jaxkan=10, pykan=2),
        cv_widths=(64, 129, 3),
        cv_epochs=100,
        cv_n=None,
        peak_n=2048,
    ),
}
GRID, ORDER, BATCH, LR = 5, 3, 256, 1e-3
CV_GRID, CV_ORDER, CV_BATCH, FOLDS = 2, 1, 64, 5
SELECTORS = ("kan_l1", "kan_l2", "kan_si", "kan_ko")
COLUMNS = (
    "task impl epochs median_s min_s max_s compile_s first_call_s samples_per_s "
    "flop_per_s note"
).split()


def digits(n_class=10):
    """The sklearn digits, standardised (constant pixels stay 0), float32 / int32."""
    from sklearn.datasets import load_digits

    x, y = load_digits(n_class=n_class, return_X_y=True)
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return x.astype(np.float32), y.astype(np.int32)


def train_flops_per_sample(widths, grid_size, order):
    """Matmul FLOPs of one sample's forward + backward (module docstring)."""
    m = [
        d * h * (grid_size + order + 1)
        for d, h in zip(widths[:-1], widths[1:], strict=False)
    ]
    return 2 * sum(m) + 2 * sum(m) + 2 * sum(m[1:])


def _batches(key, n):
    """Shuffled minibatch indices (NumPy), the last partial batch kept."""
    perm = np.array(jax.random.permutation(key, n))  # writable, for torch indexing
    return [perm[i : i + BATCH] for i in range(0, n, BATCH)]


def _epoch_keys():
    """An endless stream of keys (one per epoch or per call) for the shuffles."""
    key, i = jax.random.key(0), 0
    while True:
        yield jax.random.fold_in(key, i)
        i += 1


# --- 1. training throughput ----------------------------------------------------
def jaxfeat_trainer(widths, epochs, x, y, basis="de_boor"):
    cfg = kan.KANConfig(widths=widths, grid_size=GRID, order=ORDER, basis=basis)
    tcfg = kan.KANTrainConfig(epochs=epochs, batch_size=BATCH, learning_rate=LR)
    params = kan.init_kan(jax.random.key(0), cfg)
    grids = kan.kan_grids(cfg)
    fn = jax.jit(
        lambda k, p, g, xs, ys: kan.train_kan(
            k, p, xs, ys, grids=g, cfg=cfg, train_cfg=tcfg
        )
    )
    xs, ys = jnp.asarray(x), jnp.asarray(y)
    keys = _epoch_keys()
    return lambda: fn(next(keys), params, grids, xs, ys)


def pykan_trainer(widths, epochs, x, y):
    import torch
    from kan import MultKAN

    torch.set_num_threads(os.cpu_count())
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        model = MultKAN(
            width=list(widths),
            grid=GRID,
            k=ORDER,
            symbolic_enabled=False,
            auto_save=False,
            seed=0,
        ).speed()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    keys = _epoch_keys()

    def run():
        for _ in range(epochs):
            for idx in _batches(next(keys), len(x)):
                opt.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        return loss.item()

    return run


def jaxkan_trainer(widths, epochs, x, y):
    import optax
    from flax import nnx
    from jaxkan.models.KAN import KAN

    model = KAN(
        layer_dims=list(widths),
        layer_type="spline",
        required_parameters={"k": ORDER, "G": GRID, "add_bias": False},
        seed=0,
    )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(LR)

    @jax.jit
    def step(params, opt_state, xb, yb):
        def loss_fn(p):
            out = nnx.merge(graphdef, p, rest)(xb)
            return optax.softmax_cross_entropy_with_integer_labels(out, yb).mean()

        loss, g = jax.value_and_grad(loss_fn)(params)
        upd, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, upd), opt_state, loss

    state = [params, tx.init(params)]
    xs, ys = jnp.asarray(x), jnp.asarray(y)
    keys = _epoch_keys()

    def run():
        for _ in range(epochs):
            for idx in _batches(next(keys), len(x)):
                state[0], state[1], loss = step(*state, xs[idx], ys[idx])
        return loss

    return run


def _times(s):
    keys = ("median", "min", "max", "iqr", "samples")
    return {f"{k}_s": s[k] for k in keys}


def _versions():
    out = {}
    for name in ("pykan", "jaxkan", "torch"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def bench_train(size, repeats, peak_row, reference):
    x, y = digits(10)
    x, y = x[: size["n_train"]], y[: size["n_train"]]
    n, widths = len(x), size["widths"]
    makers = {
        "jaxfeat": jaxfeat_trainer,
        "jaxfeat_uniform": functools.partial(jaxfeat_trainer, basis="uniform"),
    }
    rows, skipped = [], {}
    for name, maker, module in (
        ("jaxkan", jaxkan_trainer, "jaxkan"),
        ("pykan", pykan_trainer, "kan"),
    ):
        if not reference:
            skipped[name] = "skipped (--smoke / --no-reference)"
        elif importlib.util.find_spec(module) is None:
            skipped[name] = f"skipped ({module} not installed)"
        else:
            makers[name] = maker
    fns, compile_s = {}, {}
    for name, maker in makers.items():
        epochs = size["epochs"][name]
        fn = maker(widths, epochs, x, y)
        start = time.perf_counter()
        jax.block_until_ready(fn())  # compile + one run (jaxkan: both batch shapes)
        compile_s[name] = time.perf_counter() - start
        fns[name] = fn
    times = interleave(fns, repeats)
    per_sample = {}
    for name, ts in times.items():
        epochs = size["epochs"][name]
        s = stats(ts)
        per_sample[name] = s["median"] / (epochs * n)
        rows.append(
            {
                "task": "train",
                "impl": name,
                "widths": list(widths),
                "epochs": epochs,
                "samples": epochs * n,
                **_times(s),
                "compile_s": compile_s[name],
                "samples_per_s": epochs * n / s["median"],
                "samples_per_s_min": epochs * n / s["max"],
                "samples_per_s_max": epochs * n / s["min"],
            }
        )
    for name, why in skipped.items():
        rows.append({"task": "train", "impl": name, "note": why})
    flops = train_flops_per_sample(widths, GRID, ORDER)
    achieved = flops / per_sample["jaxfeat"]
    achieved_uniform = flops / per_sample["jaxfeat_uniform"]
    peak = peak_row["flop_per_s"]
    rows.append(peak_row)
    rows[0]["flop_per_s"] = achieved
    rows[1]["flop_per_s"] = achieved_uniform
    fast = per_sample["jaxfeat_uniform"]
    summary = {
        "samples_per_s_jaxfeat": 1 / per_sample["jaxfeat"],
        "samples_per_s_jaxfeat_uniform": 1 / fast,
        "train_compile_s_jaxfeat": compile_s["jaxfeat"],
        "train_compile_s_jaxfeat_uniform": compile_s["jaxfeat_uniform"],
        "train_flops_per_sample": flops,
        "train_flop_per_s_jaxfeat": achieved,
        "train_flop_per_s_jaxfeat_uniform": achieved_uniform,
        "matmul_peak_flop_per_s": peak,
        "train_fraction_of_matmul_peak": achieved_uniform / peak,
        "train_fraction_of_matmul_peak_de_boor": achieved / peak,
    }
    for name in ("pykan", "jaxkan"):
        if name in per_sample:
            summary[f"samples_per_s_{name}"] = 1 / per_sample[name]
            summary[f"speedup_vs_{name}"] = per_sample[name] / fast
            summary[f"speedup_de_boor_vs_{name}"] = (
                per_sample[name] / per_sample["jaxfeat"]
            )
    return rows, summary


# --- 3. cross-validated selector scores -----------------------------------------
_COMPILE_EVENTS = ("backend_compile_duration", "jaxpr_to_mlir_module_duration")


@contextlib.contextmanager
def _compile_seconds(out: list):
    """Appends the seconds JAX spent lowering and compiling inside the block."""
    total = [0.0]

    def listener(name, secs, **_):
        if name.rsplit("/", 1)[-1] in _COMPILE_EVENTS:
            total[0] += secs

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        out.append(total[0])


def bench_crossval(size, repeats):
    x, y = digits(3)
    x, y = x[: size["cv_n"]], y[: size["cv_n"]]
    cfg = kan.KANConfig(widths=size["cv_widths"], grid_size=CV_GRID, order=CV_ORDER)
    tcfg = kan.KANTrainConfig(epochs=size["cv_epochs"], batch_size=CV_BATCH)
    folds = kan.kfold_indices(jax.random.key(42), y, FOLDS)
    key = jax.random.key(0)

    recompile = []

    def cv():
        with _compile_seconds(recompile):
            out = kan.crossval_feature_scores(
                key, x, y, folds, cfg=cfg, train_cfg=tcfg, methods=SELECTORS
            )
            return jax.block_until_ready(out.mean)

    start = time.perf_counter()
    jax.block_until_ready(cv())
    first_s = time.perf_counter() - start

    params = kan.init_kan(jax.random.key(1), cfg)
    grids = kan.kan_grids(cfg)
    score = jax.jit(
        lambda p, xv, yv: (
            kan.kan_l1(p, xv, grids=grids, cfg=cfg),
            kan.kan_l2(p, xv, grids=grids, cfg=cfg),
            kan.kan_si(p, xv, grids=grids, cfg=cfg),
            kan.kan_ko(p, xv, yv, grids=grids, cfg=cfg, task="classification"),
        )
    )
    vals = [(jnp.asarray(x[va]), jnp.asarray(y[va])) for _, va in folds]
    score_all = lambda: [score(params, xv, yv) for xv, yv in vals]
    start = time.perf_counter()
    jax.block_until_ready(score_all())  # compiles one program per fold size
    score_compile_s = time.perf_counter() - start
    times = interleave({"crossval": cv, "scoring": score_all}, repeats)
    recompile_s = float(np.median(recompile[1:]))  # the repeated calls
    cvs, scs = stats(times["crossval"]), stats(times["scoring"])
    case = dict(widths=list(cfg.widths), epochs=tcfg.epochs, folds=len(folds))
    case |= dict(batch=tcfg.batch_size, n=len(x))
    rows = [
        {
            "task": "crossval",
            "impl": "crossval_feature_scores (train + 4 selectors)",
            **case,
            **_times(cvs),
            "first_call_s": first_s,
            "compile_s": recompile_s,  # lowering + compiling in each repeated call
        },
        {
            "task": "crossval",
            "impl": "scoring only (4 selectors x 5 folds, jit)",
            **case,
            **_times(scs),
            "compile_s": score_compile_s,
        },
    ]
    summary = {
        "crossval_first_call_s": first_s,
        "crossval_s": cvs["median"],
        "crossval_compile_s_per_call": recompile_s,
        "crossval_scoring_only_s": scs["median"],
    }
    return rows, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out",
        default=None,
        help="JSON path (default benchmarks/results/NAME.json; --smoke: a temp dir)",
    )
    args = parser.parse_args(argv)
    missing = [m for m in ("kan", "jaxkan") if importlib.util.find_spec(m) is None]
    if not (args.smoke or args.no_reference) and missing and args.out is None:
        # the committed headline (speedup_vs_pykan / _vs_jaxkan) needs both
        parser.error(
            f'{", ".join(missing)} not installed (`pip install -e ".[bench]"`): '
            "refusing to overwrite benchmarks/results/kan.json without the "
            "comparison (pass --out or --no-reference)"
        )
    args.out = str(out_path(args.out, "kan", args.smoke))
    size = SIZES["smoke" if args.smoke else "default"]
    reference = not (args.smoke or args.no_reference)
    print(f"devices: {jax.devices()}; cpu cores: {os.cpu_count()}")
    with jax.default_matmul_precision("highest"):
        peak_row = matmul_peak(size["peak_n"])
        rows1, sum1 = bench_train(size, args.repeats, peak_row, reference)
        rows2, sum2 = bench_crossval(size, args.repeats)
    rows = rows1 + rows2
    print_table(rows, COLUMNS)
    summary = {**sum1, **sum2}
    targets = {"speedup_vs_pykan": 10.0, "speedup_vs_jaxkan": 2.0}
    for k, v in summary.items():
        line = f"{k:36s} {v:.4g}" if isinstance(v, float) else f"{k:36s} {v}"
        if k in targets:
            met = "met" if v >= targets[k] else "NOT met"
            line += f"  (target >= {targets[k]:g}: {met})"
        print(line)
    path = write_json(
        args.out,
        "kan",
        rows,
        summary,
        {
            "sizes": size,
            "repeats": args.repeats,
            "smoke": args.smoke,
            "reference": reference,
            "versions": _versions(),
            "cpu_count": os.cpu_count(),
            "targets": targets,
        },
    )
    print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    main()
