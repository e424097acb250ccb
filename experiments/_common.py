"""Shared machinery of the experiment scripts: CLI, claims, atomic results, figures.

An experiment is a function `run(cfg, key, progress) -> Outcome` plus configs per
scale. `Experiment.main(argv)` parses the common flags, runs inside
`jax.enable_x64(...)`, writes `results.json` and `figure.png` atomically to the output
directory and returns the results dict; `Experiment.cli(argv)` also sets the exit code
(1 when a checked claim of kind `check` failed).
"""

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

SCALES = ("smoke", "default", "paper")
REPO_ROOT = Path(__file__).resolve().parent.parent
REGISTRY: dict[str, "Experiment"] = {}


@dataclasses.dataclass
class Claim:
    """One tested statement. `kind` is "check" (must hold) or "finding" (reported).

    A claim not evaluated at this scale (`checked=False`) is written with
    `passed: null`, so no reader of results.json takes it for a failure.
    """

    id: str
    kind: str
    statement: str
    passed: bool | None
    measured: Any
    expected: Any
    checked: bool = True
    note: str = ""

    def __post_init__(self):
        if self.kind not in ("check", "finding"):
            raise ValueError(f"kind: expected 'check' or 'finding'; got {self.kind!r}")
        self.passed = bool(self.passed) if self.checked else None


@dataclasses.dataclass
class Outcome:
    """What an experiment's `run` returns."""

    metrics: dict
    claims: list[Claim]
    figure: Any  # matplotlib.figure.Figure


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A registered experiment."""

    name: str
    pillar: str
    title: str
    run: Callable[..., Outcome]
    scales: dict
    x64: bool = False
    module: str = ""
    order: int = 100
    # `code_version` when the module was loaded: the code the numbers come from (a
    # file saved during a run must not stamp results it did not produce)
    version: str = ""

    @property
    def slug(self) -> str:
        """`<pillar>/<name>`: the results sub-directory."""
        return f"{self.pillar}/{self.name}"

    def config(self, scale: str):
        """The config of `scale`."""
        return self.scales[scale]

    def parser(self) -> argparse.ArgumentParser:
        """The common command-line flags."""
        p = argparse.ArgumentParser(
            prog=f"experiments.{self.pillar}.{self.name}", description=self.title
        )
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--scale", choices=SCALES, default="default")
        p.add_argument("--smoke", action="store_true", help="same as --scale smoke")
        p.add_argument(
            "--out-dir", type=Path, default=None, help=f"default: results/{self.slug}"
        )
        p.add_argument(
            "--x64",
            action=argparse.BooleanOptionalAction,
            default=self.x64,
            help="run in float64 (default for closed-form comparisons)",
        )
        p.add_argument("--no-progress", action="store_true")
        return p

    def main(self, argv: list[str] | None = None) -> dict:
        """Runs the experiment and writes its results; returns the results dict."""
        args = self.parser().parse_args(argv)
        scale = "smoke" if args.smoke else args.scale
        out_dir = args.out_dir or Path("results") / self.slug
        cfg = self.config(scale)
        version = self.version or code_version(self)
        start = time.perf_counter()
        with jax.enable_x64(args.x64):
            outcome = self.run(
                cfg, jax.random.key(args.seed), progress=not args.no_progress
            )
        wall = time.perf_counter() - start
        results = {
            "experiment": self.name,
            "pillar": self.pillar,
            "title": self.title,
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "seed": args.seed,
            "scale": scale,
            "config": dataclasses.asdict(cfg),
            "environment": environment(x64=args.x64),
            "code_version": version,
            "wall_time_s": round(wall, 3),
            "metrics": to_json(outcome.metrics),
            "claims": [to_json(dataclasses.asdict(c)) for c in outcome.claims],
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_figure(outcome.figure, out_dir / "figure.png")
        atomic_write_text(
            out_dir / "results.json", json.dumps(results, indent=2) + "\n"
        )
        print_summary(results, out_dir)
        return results

    def cli(self, argv: list[str] | None = None) -> int:
        """`main` plus the exit code: 1 if a checked `check` claim failed."""
        return 1 if failed_checks(self.main(argv)) else 0


def register(exp: Experiment) -> Experiment:
    """Adds `exp` to the registry that `jaxfeat reproduce` reads."""
    if exp.name in REGISTRY and REGISTRY[exp.name].module != exp.module:
        raise ValueError(f"name: experiment {exp.name!r} registered twice")
    missing = set(SCALES) - set(exp.scales)
    if missing:
        raise ValueError(f"scales: {exp.name} lacks configs for {sorted(missing)}")
    REGISTRY[exp.name] = exp
    return exp


def register_module(module_name: str) -> Experiment:
    """Registers the experiment defined by a script's module-level names.

    The script defines `run(cfg, key, progress) -> Outcome`, `SCALES` (a config per
    scale), `TITLE` and optionally `X64` (default False); its name and pillar come from
    its module path `experiments.<pillar>.<name>`.
    """
    mod = sys.modules[module_name]
    spec = getattr(mod, "__spec__", None)
    full = spec.name if spec is not None else module_name
    *_, pillar, name = full.split(".")
    exp = Experiment(
        name=name,
        pillar=pillar,
        title=mod.TITLE,
        run=mod.run,
        scales=mod.SCALES,
        x64=getattr(mod, "X64", False),
        module=full,
        order=getattr(mod, "ORDER", 100),
    )
    return register(dataclasses.replace(exp, version=code_version(exp)))


def failed_checks(results: dict) -> list[dict]:
    """Checked claims of kind `check` that failed."""
    return [
        c
        for c in results["claims"]
        if c["kind"] == "check" and c["checked"] and not c["passed"]
    ]


def to_json(x):
    """Converts arrays and NumPy scalars to JSON values (inf and NaN as strings)."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_json(v) for v in x]
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        return to_json(np.asarray(x).tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def environment(*, x64: bool) -> dict:
    """Versions, backend and device of this run."""
    import flax
    import jaxlib
    import optax

    dev = jax.devices()[0]
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "device": str(dev),
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "x64": x64,
        "git_sha": git_sha(),
    }


def git_sha() -> str | None:
    """The repository HEAD, if available."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def code_version(exp: Experiment) -> str:
    """Hash of everything an experiment's numbers depend on in this repository.

    The library sources, the shared modules of `experiments/` (not the runner, which
    only schedules and reports) and every module of the
    experiment's pillar folder (its script and the private helpers it imports), each
    under its path relative to the repository, plus the JAX and jaxlib versions.
    """
    import jaxlib

    import jaxfeat

    h = hashlib.sha256()
    lib = Path(jaxfeat.__file__).parent
    here = Path(__file__).parent
    # every shared module but the runner (the CLI and REPORT.md layout: no numbers)
    shared = [f for f in sorted(here.glob("*.py")) if f.name != "_runner.py"]
    files = sorted(lib.rglob("*.py")) + shared
    spec = importlib.util.find_spec(exp.module) if exp.module else None
    if spec is not None and spec.origin:
        files += sorted(Path(spec.origin).parent.glob("*.py"))
    for f in dict.fromkeys(files):  # ordered, without repeats
        try:
            name = f.resolve().relative_to(here.parent.resolve())
        except ValueError:  # an installed copy outside the repository
            name = f.relative_to(lib.parent)
        h.update(str(name).encode())
        h.update(f.read_bytes())
    h.update(f"jax {jax.__version__} jaxlib {jaxlib.__version__}".encode())
    return h.hexdigest()[:16]


def _publish(tmp: str, path: Path) -> None:
    """Gives a finished temporary file the usual permissions, then renames it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Writes to a temporary file in the same directory, then renames it over `path`.

    The data is flushed to disk before the rename, so a crash leaves either the old
    file or the new one, never a truncated one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_figure(fig, path: Path) -> None:
    """Saves a matplotlib Figure as PNG atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_figure(
    nrows: int = 1, ncols: int = 1, *, width: float = 5.0, height: float = 3.6
):
    """A `matplotlib.figure.Figure` (object API, no pyplot state) and its axes grid."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def print_summary(results: dict, out_dir: Path) -> None:
    """One line per claim."""
    print(
        f"[{results['pillar']}/{results['experiment']}] "
        f"{results['wall_time_s']:.1f}s -> {out_dir}"
    )
    for c in results["claims"]:
        status = "SKIP" if not c["checked"] else ("PASS" if c["passed"] else "FAIL")
        print(
            f"  {status:4s} {c['kind']:7s} {c['id']}: {c['statement']} "
            f"(measured {fmt(c['measured'])}, expected {fmt(c['expected'])})"
        )


def fmt(v, digits: int = 4) -> str:
    """Compact formatting of a measured or expected value."""
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, list):
        inner = ", ".join(fmt(x, digits) for x in v[:8])
        return f"[{inner}{', ...' if len(v) > 8 else ''}]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt(x, digits)}" for k, x in v.items()) + "}"
    return str(v)
