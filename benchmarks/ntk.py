"""Benchmark of `jaxfeat.ntk.empirical_ntk_fn` on MLPs, with neural-tangents optional.

Every algorithm (jacobian, ntvp, structured, auto) and a naive `jacrev` contraction
on MLPs with input 64, widths 512-2048, depth 2-3, 10 logits, n = 64-1024, logits
traced and not: median time over repeats (compile reported once, separately), peak
memory of a fresh process (`ru_maxrss`, n = 256 cases), agreement with the structured
kernel, and whether "auto" picked the fastest algorithm. With `--nt-python PATH` (an
interpreter with `jax[cpu]==0.4.30 neural-tangents==0.6.5 "numpy<2"`), neural-tangents'
three implementations run on the same weights and inputs in a subprocess, values are
compared, and `speedup_vs_neural_tangents` = NT's fastest / jaxfeat structured at
n >= 256 (the smallest ratio over the cases).

    python -m benchmarks.ntk [--smoke] [--repeats 3] [--nt-python PATH] [--out PATH]
"""

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import out_path, print_table, stats, write_json
from jaxfeat import ntk

METHODS = ("structured", "jacobian", "ntvp", "auto", "naive")
# (widths, n, traced); methods whose estimated memory or flops exceed the budget are
# recorded as skipped.
CASES = {
    "smoke": [((64, 64), 32, True), ((64, 64), 32, False)],
    "default": [
        ((512, 512), 64, True),
        ((512, 512), 64, False),
        ((512, 512), 256, True),
        ((512, 512), 256, False),
        ((512, 512), 1024, True),
        ((1024, 1024), 256, True),
        ((2048, 2048), 256, True),
        ((2048, 2048), 1024, True),
        ((512, 512, 512), 256, True),
        ((512, 512, 512), 256, False),
    ],
}
NT_CASES = {
    (64, 64, 32, True),
    (512, 512, 64, True),
    (512, 512, 64, False),
    (512, 512, 256, True),
    (512, 512, 256, False),
    (2048, 2048, 256, True),
}
MEMORY_BUDGET_FLOATS = 6e8  # 2.4 GB of float32 Jacobians
NTVP_BUDGET_FLOPS = 2e12


def setup(widths, n, seed=0):
    cfg = ntk.MLPConfig(in_dim=64, widths=widths, out_dim=10, b_std=0.1)
    params = ntk.init_mlp(jax.random.key(seed), cfg)
    x = jax.random.normal(jax.random.key(seed + 1), (n, 64))
    return cfg, params, x


def kernel_fn(cfg, method, traced):
    f = functools.partial(ntk.mlp_apply, cfg=cfg)
    if method == "naive":

        def naive(params, x):
            flat, unravel = jax.flatten_util.ravel_pytree(params)
            j = jax.vmap(lambda xi: jax.jacrev(lambda p: f(unravel(p), xi))(flat))(x)
            k = jnp.einsum("nap,mbp->nmab", j, j)
            return jnp.einsum("nmaa->nm", k) / k.shape[-1] if traced else k

        return jax.jit(naive)
    return ntk.empirical_ntk_fn(
        f,
        method=method,
        trace_outputs=traced,
        structure=functools.partial(ntk.mlp_taps, cfg=cfg),
    )


def feasible(cfg, method, n):
    p = cfg.n_params
    if method in ("jacobian", "naive") and n * cfg.out_dim * p > MEMORY_BUDGET_FLOATS:
        return False
    if method == "ntvp" and (n * cfg.out_dim) * 2 * n * 2 * p > NTVP_BUDGET_FLOPS:
        return False
    return True


def time_method(cfg, params, x, method, traced, repeats):
    fn = kernel_fn(cfg, method, traced)
    start = time.perf_counter()
    k = jax.block_until_ready(fn(params, x))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(params, x))
        times.append(time.perf_counter() - start)
    return np.asarray(k), compile_s, times


def own_peak_kb() -> int:
    """This process's peak resident memory in kB, counted from its own exec.

    Linux: `VmHWM` of /proc/self/status. Not `ru_maxrss`: a child started by
    `subprocess` inherits its parent's peak there, so every kernel that needed less
    than the benchmark process itself read the parent's 2.3 GB.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


def peak_memory(widths, n, traced, method):
    """Peak resident memory (MB) of a fresh process computing one kernel."""
    code = (
        "import jax; from benchmarks.ntk import setup, kernel_fn, own_peak_kb; "
        f"cfg, p, x = setup({widths!r}, {n}); "
        f"jax.block_until_ready(kernel_fn(cfg, {method!r}, {traced})(p, x)); "
        "print(own_peak_kb())"
    )
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=900,
    )
    return int(out.stdout.split()[-1]) / 1024 if out.returncode == 0 else None


def run_nt(nt_python, cfg, params, x, traced, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        arrays = {f"w{i}": np.asarray(layer.w) for i, layer in enumerate(params)}
        arrays |= {f"b{i}": np.asarray(layer.b) for i, layer in enumerate(params)}
        np.savez(
            src,
            x=np.asarray(x),
            n_layers=len(params),
            W_std=cfg.W_std,
            b_std=cfg.b_std,
            repeats=repeats,
            traced=traced,
            **arrays,
        )
        runner = Path(__file__).resolve().parent / "_nt_runner.py"
        proc = subprocess.run(
            [nt_python, str(runner), str(src), str(dst)],
            capture_output=True,
            text=True,
            timeout=3600,
            env=dict(os.environ, JAX_PLATFORMS="cpu"),
        )
        if proc.returncode != 0:
            return {"error": proc.stderr[-500:]}
        return dict(np.load(dst))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--nt-python",
        default=None,
        help="interpreter with jax<=0.4.30 and neural-tangents 0.6.5",
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--out",
        default=None,
        help="JSON path (default benchmarks/results/NAME.json; --smoke: a temp dir)",
    )
    args = parser.parse_args(argv)
    if not args.smoke and args.nt_python is None and args.out is None:
        # the committed headline (speedup_vs_neural_tangents) needs the reference
        parser.error(
            "--nt-python not given: the neural-tangents comparison would be dropped; "
            "refusing to overwrite benchmarks/results/ntk.json (pass --out)"
        )
    args.out = str(out_path(args.out, "ntk", args.smoke))
    cases = CASES["smoke" if args.smoke else "default"]
    rows, auto_ok, speedups, agree = [], [], [], []
    print(f"devices: {jax.devices()}")
    with jax.default_matmul_precision("highest"):
        for widths, n, traced in cases:
            cfg, params, x = setup(widths, n)
            case = dict(widths=list(widths), n=n, traced=traced, n_params=cfg.n_params)
            ref = None
            timing = {}
            for method in METHODS:
                if not feasible(cfg, method, n):
                    rows.append({**case, "impl": method, "skipped": "over budget"})
                    continue
                k, comp, ts = time_method(cfg, params, x, method, traced, args.repeats)
                if method == "structured":
                    ref = k
                err = float(np.max(np.abs(k - ref)) / np.max(np.abs(ref)))
                s = stats(ts)
                timing[method] = s["median"]
                mem = (
                    None
                    if args.no_memory or n != 256 or args.smoke
                    else peak_memory(widths, n, traced, method)
                )
                rows.append(
                    {
                        **case,
                        "impl": f"jaxfeat {method}",
                        "median_s": s["median"],
                        "min_s": s["min"],
                        "max_s": s["max"],
                        "iqr_s": s["iqr"],
                        "compile_s": comp,
                        "peak_mb": mem,
                        "rel_err": err,
                        "samples_s": s["samples"],
                    }
                )
                agree.append(err)
            chosen = ntk.choose_method(params, x.shape, cfg.out_dim, has_structure=True)
            fastest = min(
                (m for m in timing if m not in ("auto", "naive")), key=timing.get
            )
            auto_ok.append(chosen == fastest)
            rows.append(
                {
                    **case,
                    "impl": "auto choice",
                    "chosen": chosen,
                    "fastest": fastest,
                    "auto_picked_fastest": chosen == fastest,
                }
            )
            if args.nt_python and (*widths, n, traced) in NT_CASES:
                nt_out = run_nt(args.nt_python, cfg, params, x, traced, args.repeats)
                best = None
                for name in (
                    "nt_jacobian_contraction",
                    "nt_ntk_vector_products",
                    "nt_structured_derivatives",
                ):
                    if name not in nt_out:
                        rows.append(
                            {
                                **case,
                                "impl": name,
                                "error": str(
                                    nt_out.get(name + "_error", nt_out.get("error"))
                                ),
                            }
                        )
                        continue
                    s = stats(list(nt_out[name + "_times"]))
                    err = float(
                        np.max(np.abs(nt_out[name] - ref)) / np.max(np.abs(ref))
                    )
                    rows.append(
                        {
                            **case,
                            "impl": name,
                            "median_s": s["median"],
                            "min_s": s["min"],
                            "max_s": s["max"],
                            "iqr_s": s["iqr"],
                            "compile_s": float(nt_out[name + "_compile"]),
                            "rel_err": err,
                            "samples_s": s["samples"],
                            "versions": str(nt_out["versions"]),
                        }
                    )
                    assert err < 1e-4, (name, err)
                    best = s["median"] if best is None else min(best, s["median"])
                if best is not None and n >= 256:
                    speedups.append(best / timing["structured"])
    print_table(
        rows,
        [
            "widths",
            "n",
            "traced",
            "impl",
            "median_s",
            "compile_s",
            "peak_mb",
            "rel_err",
            "chosen",
            "fastest",
        ],
    )
    summary = {
        "max_rel_err_between_algorithms": float(max(agree)),
        "auto_picked_fastest_fraction": float(np.mean(auto_ok)),
    }
    if speedups:
        summary["speedup_vs_neural_tangents"] = float(min(speedups))
        summary["max_speedup_vs_neural_tangents"] = float(max(speedups))
    for k, v in summary.items():
        print(f"{k:36s} {v:.4g}")
    path = write_json(
        args.out,
        "ntk",
        rows,
        summary,
        {"repeats": args.repeats, "smoke": args.smoke, "nt_python": args.nt_python},
    )
    print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    main()
