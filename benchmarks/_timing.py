"""Shared timing helpers: interleaved repeats, medians, the environment block, JSON."""

import json
import statistics
import tempfile
import time
from pathlib import Path

import jax

from experiments._common import atomic_write_text, environment, to_json


def time_call(fn, *, sync=jax.block_until_ready) -> float:
    """Wall time of one call, synchronised."""
    start = time.perf_counter()
    sync(fn())
    return time.perf_counter() - start


def interleave(fns: dict, repeats: int) -> dict:
    """Times each callable `repeats` times, A B A B ..., returning lists of seconds."""
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name].append(time_call(fn))
    return out


def stats(samples: list[float]) -> dict:
    """Median, min, max and interquartile range of a list of times."""
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "iqr": q[2] - q[0],
        "n": len(samples),
        "samples": samples,
    }


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    """Achieved FLOP/s of a float32 `jnp.dot` of two n x n matrices on this device.

    Returns the benchmark row: `flop_per_s` from the fastest of `repeats` timed
    products (a peak), and the median, min and max seconds of all of them.
    """
    a = jax.random.normal(jax.random.key(0), (n, n))
    b = jax.random.normal(jax.random.key(1), (n, n))
    f = jax.jit(jax.numpy.dot)
    jax.block_until_ready(f(a, b))  # compile
    t = stats([time_call(lambda: f(a, b)) for _ in range(repeats)])
    return {
        "task": "matmul_peak",
        "impl": f"jnp.dot {n}x{n} float32",
        "flop_per_s": 2 * n**3 / t["min"],
        **{f"{k}_s": t[k] for k in ("median", "min", "max", "iqr")},
        "n_repeats": t["n"],
    }


def out_path(out: str | None, name: str, smoke: bool) -> Path:
    """Where a benchmark writes: `--out`, else the committed `results/<name>.json`.

    A `--smoke` run without `--out` goes to the temporary directory instead, so a
    quick check never overwrites the committed results of a full run.
    """
    if out is not None:
        return Path(out)
    if smoke:
        return Path(tempfile.gettempdir()) / "jaxfeat-bench-smoke" / f"{name}.json"
    return Path(__file__).parent / "results" / f"{name}.json"


def write_json(path, name: str, rows: list, summary: dict, extra: dict | None = None):
    """Writes `benchmarks/results/<name>.json` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "environment": environment(x64=False),
        "rows": rows,
        "summary": summary,
        **(extra or {}),
    }
    atomic_write_text(path, json.dumps(to_json(payload), indent=2) + "\n")
    return path


def print_table(rows: list, cols: list[str]):
    """Fixed-width table of the rows."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print(
            "  ".join(
                _fmt(r.get(c)).ljust(w) for c, w in zip(cols, widths, strict=True)
            )
        )


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
