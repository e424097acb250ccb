"""Benchmark of `jaxfeat.linear_ssl`: closed-form critical times and batched GD.

1. Closed-form critical times over >= 10^6 (lambda, rho, L, eps, p) grid points in one
   jitted call (points/s), against SciPy's adaptive `quad` on a sample of the points.
2. Full-matrix JEPA gradient descent on >= 256 configurations (d = 8, L = 4, 10^5
   steps) with `sweep_gd` (vmap + scan, sharded over devices), against a plain NumPy
   loop over configurations and steps and a NumPy loop over steps vectorised over
   configurations, on the same configurations. NumPy runs a fixed number of steps and
   its per-step time is extrapolated to the full run (its cost per step is constant).
3. Achieved FLOP/s of the GD sweep (XLA's cost analysis of one step) as a fraction of a
   float32 `jnp.dot` peak measured in the same run.

    python -m benchmarks.linear_ssl [--smoke] [--repeats 5] [--out PATH]

On a CPU host JAX sees one device unless told otherwise; `sweep_gd` shards over every
visible device, so expose each core as one (the command for `linear_ssl_cpu.json`;
its environment records the device count the committed run had):

    XLA_FLAGS=--xla_force_host_platform_device_count=$(nproc) \
        python -m benchmarks.linear_ssl --out benchmarks/results/linear_ssl_cpu.json
"""

import argparse
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
from jaxfeat import linear_ssl as ls

SIZES = {
    "smoke": dict(
        grid=(10, 10, 6, 4, 5),
        configs=16,
        d=8,
        depth=4,
        steps=1_000,
        numpy_steps=50,
        numpy_loop_configs=2,
        quad_points=20,
    ),
    "default": dict(
        grid=(20, 40, 6, 24, 9),
        configs=256,
        d=8,
        depth=4,
        steps=100_000,
        numpy_steps=1_000,
        numpy_loop_configs=8,
        quad_points=200,
    ),
}
LR, EPS = 0.05, 1e-2


# --- 1. closed-form critical times ---------------------------------------------------
def critical_time_grid(shape):
    lam = np.linspace(0.5, 2.0, shape[0])
    rho = np.linspace(0.3, 1.0, shape[1])
    L = np.arange(1, shape[2] + 1)
    # every point valid: eps < p * rho^L >= 0.1 * 0.3^6 = 7.3e-5 (else no t* exists)
    eps = np.geomspace(1e-6, 5e-5, shape[3])
    p = np.linspace(0.1, 0.9, shape[4])
    mesh = np.meshgrid(lam, rho, L, eps, p, indexing="ij")
    return [jnp.asarray(m.reshape(-1)) for m in mesh]


def scipy_critical_time(lam, rho, L, eps, p):
    from scipy.integrate import quad

    a, u = eps ** (1 / L), p ** (1 / L) * rho
    f = lambda s: 1 / (s ** (2 * L) * (1 - s / rho))
    return quad(f, a, u, epsabs=0, epsrel=1e-10, limit=500)[0] / lam


def bench_critical_times(size, repeats):
    lam, rho, L, eps, p = critical_time_grid(size["grid"])
    n = lam.shape[0]
    fn = jax.jit(
        lambda *a: ls.critical_time(*a[:4], objective="jepa", p=a[4], max_depth=6)
    )
    start = time.perf_counter()
    out = jax.block_until_ready(fn(lam, rho, eps, L, p))
    compile_s = time.perf_counter() - start
    assert bool(jnp.all(jnp.isfinite(out) & (out > 0))), "grid holds invalid points"
    idx = np.linspace(0, n - 1, size["quad_points"]).astype(int)
    pts = [tuple(float(np.asarray(v)[i]) for v in (lam, rho, L, eps, p)) for i in idx]
    ref = np.array([scipy_critical_time(*q) for q in pts])
    err = float(np.max(np.abs(np.asarray(out)[idx] / ref - 1)))
    print(
        f"critical times: max relative difference to SciPy quad {err:.2e} "
        f"(float32; tolerance 1e-3)"
    )
    assert err < 1e-3, err
    t = interleave(
        {
            "jaxfeat": lambda: fn(lam, rho, eps, L, p),
            "scipy_quad": lambda: [scipy_critical_time(*q) for q in pts],
        },
        repeats,
    )
    jf = stats(t["jaxfeat"])
    sq = stats(t["scipy_quad"])
    per_point_ref = sq["median"] / len(pts)
    rows = [
        {
            "task": "critical_time",
            "impl": "jaxfeat (jit, one call)",
            "points": n,
            "median_s": jf["median"],
            "min_s": jf["min"],
            "max_s": jf["max"],
            "iqr_s": jf["iqr"],
            "compile_s": compile_s,
            "points_per_s": n / jf["median"],
            **_raw(jf),
        },
        {
            "task": "critical_time",
            "impl": "scipy quad (per point)",
            "points": len(pts),
            "median_s": sq["median"],
            "min_s": sq["min"],
            "max_s": sq["max"],
            "iqr_s": sq["iqr"],
            "points_per_s": 1 / per_point_ref,
            **_raw(sq),
        },
    ]
    summary = {
        "critical_time_points": n,
        "critical_time_points_per_s": n / jf["median"],
        "critical_time_max_rel_err_vs_scipy": err,
        "speedup_vs_scipy_quad": per_point_ref * n / jf["median"],
    }
    return rows, summary


# --- 2. batched gradient descent --------------------------------------------------
def gd_problem(size):
    k = jax.random.split(jax.random.key(0), 2)
    n, d = size["configs"], size["d"]
    lam = jax.random.uniform(k[0], (n, d), minval=0.5, maxval=1.5)
    rho = jax.random.uniform(k[1], (n, d), minval=0.3, maxval=1.0)
    covs = jax.vmap(lambda a, b: ls.population_covariances(ls.mode_spec(a, b)))(
        lam, rho
    )
    params = ls.init_aligned(EPS, d=d, depth=size["depth"])
    params = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(a, (n, *a.shape)), params
    )
    return params, covs


def numpy_step(W, V, Sxx, Syx, lr):
    """One JEPA GD step with analytic stop-gradient gradients (spec section 1.2)."""
    L = len(W)
    below = [np.eye(V.shape[0], dtype=V.dtype)]  # W^{a-1}...W^1
    for a in range(L):
        below.append(W[a] @ below[-1])
    Wb = below[-1]
    G = V @ Wb @ Sxx - Wb @ Syx
    gV, gWb = G @ Wb.T, V.T @ G
    above = np.eye(V.shape[0], dtype=V.dtype)  # W^L...W^{a+1}
    new_W = [None] * L
    for a in range(L - 1, -1, -1):
        new_W[a] = W[a] - lr * (above.T @ gWb @ below[a].T)
        above = above @ W[a]
    return new_W, V - lr * gV


def numpy_batched_step(W, V, Sxx, Syx, lr):
    """The same step vectorised over configurations (leading axis) with np.matmul."""
    L = W.shape[1]
    eye = np.broadcast_to(np.eye(V.shape[-1], dtype=V.dtype), V.shape)
    below = [eye]
    for a in range(L):
        below.append(W[:, a] @ below[-1])
    Wb = below[-1]
    T = np.swapaxes
    G = V @ Wb @ Sxx - Wb @ Syx
    gV, gWb = G @ T(Wb, -1, -2), T(V, -1, -2) @ G
    above = eye
    new_W = np.empty_like(W)
    for a in range(L - 1, -1, -1):
        new_W[:, a] = W[:, a] - lr * (T(above, -1, -2) @ gWb @ T(below[a], -1, -2))
        above = above @ W[:, a]
    return new_W, V - lr * gV


def bench_gd(size, repeats, peak_row):
    peak = peak_row["flop_per_s"]
    params, covs = gd_problem(size)
    n, steps = size["configs"], size["steps"]
    state = jax.vmap(ls.init_gd)(params)
    cfg = ls.GDConfig(objective="jepa", n_steps=steps, log_every=steps)
    run = lambda: ls.sweep_gd(state, covs, LR, cfg=cfg, progress=False)[0].params
    W_np = np.asarray(params.W)
    V_np = np.asarray(params.V)
    Sxx, Syx = np.asarray(covs.xx), np.asarray(covs.yx)
    # agreement before timing: 200 steps, float32
    chk = ls.GDConfig(objective="jepa", n_steps=200, log_every=200)
    ref_p = ls.sweep_gd(state, covs, LR, cfg=chk, progress=False)[0].params
    Wl, Vl = list(W_np[0]), V_np[0]
    Wb_, Vb_ = W_np.copy(), V_np.copy()
    for _ in range(200):
        Wl, Vl = numpy_step(Wl, Vl, Sxx[0], Syx[0], LR)
        Wb_, Vb_ = numpy_batched_step(Wb_, Vb_, Sxx, Syx, LR)
    err_loop = float(np.max(np.abs(np.stack(Wl) - np.asarray(ref_p.W[0]))))
    err_batch = float(np.max(np.abs(Wb_ - np.asarray(ref_p.W))))
    print(
        f"GD: max |jaxfeat - numpy| after 200 steps: loop {err_loop:.2e}, "
        f"batched {err_batch:.2e} (float32; tolerance 1e-5)"
    )
    assert max(err_loop, err_batch) < 1e-5
    start = time.perf_counter()
    jax.block_until_ready(run())
    compile_s = time.perf_counter() - start  # includes one full run
    m_loop, m_steps = size["numpy_loop_configs"], size["numpy_steps"]

    def numpy_loop():
        for c in range(m_loop):
            Wc, Vc = list(W_np[c]), V_np[c]
            for _ in range(m_steps):
                Wc, Vc = numpy_step(Wc, Vc, Sxx[c], Syx[c], LR)
        return Vc

    def numpy_batched():
        Wc, Vc = W_np, V_np
        for _ in range(m_steps):
            Wc, Vc = numpy_batched_step(Wc, Vc, Sxx, Syx, LR)
        return Vc

    t = interleave(
        {"jaxfeat": run, "numpy_loop": numpy_loop, "numpy_batched": numpy_batched},
        repeats,
    )
    scale_loop = (n / m_loop) * (steps / m_steps)
    scale_batch = steps / m_steps
    jf = stats(t["jaxfeat"])
    nl = stats([s * scale_loop for s in t["numpy_loop"]])
    nb = stats([s * scale_batch for s in t["numpy_batched"]])
    # FLOPs of one step of the whole batch (the closed-form gradients sweep_gd runs),
    # from XLA's cost analysis.
    step = jax.jit(
        jax.vmap(
            lambda p, c: jax.tree_util.tree_map(
                lambda a, g: a - LR * g,
                p,
                ls.population_gradients(p, c, objective="jepa"),
            )
        )
    )
    cost = step.lower(params, covs).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost["flops"]) * steps
    achieved = flops / jf["median"]
    rows = [
        {
            "task": "gd",
            "impl": "jaxfeat sweep_gd (vmap+scan)",
            "configs": n,
            "steps": steps,
            "median_s": jf["median"],
            "min_s": jf["min"],
            "max_s": jf["max"],
            "iqr_s": jf["iqr"],
            "compile_s": compile_s,
            "flop_per_s": achieved,
            **_raw(jf),
        },
        {
            "task": "gd",
            "impl": "numpy loop (configs x steps)",
            "configs": n,
            "steps": steps,
            "median_s": nl["median"],
            "min_s": nl["min"],
            "max_s": nl["max"],
            "iqr_s": nl["iqr"],
            "measured": f"{m_loop} configs x {m_steps} steps, scaled x{scale_loop:g}",
            **_raw(nl),
        },
        {
            "task": "gd",
            "impl": "numpy batched over configs",
            "configs": n,
            "steps": steps,
            "median_s": nb["median"],
            "min_s": nb["min"],
            "max_s": nb["max"],
            "iqr_s": nb["iqr"],
            "measured": f"{m_steps} steps, scaled x{scale_batch:g}",
            **_raw(nb),
        },
        peak_row,
    ]
    summary = {
        "gd_configs": n,
        "gd_steps": steps,
        "gd_d": size["d"],
        "gd_depth": size["depth"],
        "gd_seconds": jf["median"],
        "speedup_vs_numpy": nl["median"] / jf["median"],
        "speedup_vs_numpy_batched": nb["median"] / jf["median"],
        "gd_flop_per_s": achieved,
        "matmul_peak_flop_per_s": peak,
        "gd_fraction_of_matmul_peak": achieved / peak,
    }
    return rows, summary


def _raw(s):
    return {"samples_s": s["samples"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out",
        default=None,
        help="JSON path (default benchmarks/results/NAME.json; --smoke: a temp dir)",
    )
    args = parser.parse_args(argv)
    args.out = str(out_path(args.out, "linear_ssl", args.smoke))
    size = SIZES["smoke" if args.smoke else "default"]
    print(f"devices: {jax.devices()}")
    # True float32 products on every backend (no TF32 on GPUs), matching NumPy.
    with jax.default_matmul_precision("highest"):
        peak_row = matmul_peak(512 if args.smoke else 2048)
        rows1, sum1 = bench_critical_times(size, args.repeats)
        rows2, sum2 = bench_gd(size, args.repeats, peak_row)
    rows = rows1 + rows2
    print_table(
        rows,
        [
            "task",
            "impl",
            "median_s",
            "min_s",
            "max_s",
            "iqr_s",
            "compile_s",
            "points_per_s",
            "flop_per_s",
        ],
    )
    summary = {**sum1, **sum2}
    for k, v in summary.items():
        print(f"{k:36s} {v:.4g}" if isinstance(v, float) else f"{k:36s} {v}")
    path = write_json(
        args.out,
        "linear_ssl",
        rows,
        summary,
        {"sizes": size, "repeats": args.repeats, "smoke": args.smoke},
    )
    print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    main()
