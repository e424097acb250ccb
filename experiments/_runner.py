"""`jaxfeat list` and `jaxfeat reproduce`: discovery, resume, and results/REPORT.md."""

import argparse
import dataclasses
import importlib
import importlib.util
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

import jax
from tqdm.auto import tqdm

import experiments
from experiments._common import (
    REGISTRY,
    SCALES,
    atomic_write_text,
    code_version,
    failed_checks,
    fmt,
    to_json,
)

PILLAR_ORDER = ("linear_ssl", "ntk", "kan", "influence")


def discover() -> dict:
    """Imports every `experiments/<pillar>/<name>.py`; each registers itself."""
    for info in pkgutil.walk_packages(experiments.__path__, "experiments."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_") or info.ispkg:
            continue
        importlib.import_module(info.name)
    key = lambda kv: (_pillar_rank(kv[1]), kv[1].order, kv[0])
    return dict(sorted(REGISTRY.items(), key=key))


def _pillar_rank(exp) -> int:
    return PILLAR_ORDER.index(exp.pillar) if exp.pillar in PILLAR_ORDER else 99


_RESULT_KEYS = ("scale", "seed", "environment", "claims", "wall_time_s")
_ENV_KEYS = ("backend", "device_kind", "x64", "jax")
_CLAIM_KEYS = ("id", "kind", "statement", "passed", "measured", "expected", "checked")


def _cell(text) -> str:
    """A markdown table cell: `|` escaped, newlines as spaces.

    An unescaped `|` (as in `|bias| < 0.05`) split the row and pushed PASS/FAIL
    out of its column.
    """
    return str(text).replace("|", "\\|").replace("\n", " ")


def _load(path: Path) -> dict | None:
    """A results.json as a dict; None if missing, unreadable or incomplete."""
    try:
        res = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(res, dict) or any(k not in res for k in _RESULT_KEYS):
        return None
    env, claims = res["environment"], res["claims"]
    if not isinstance(env, dict) or any(k not in env for k in _ENV_KEYS):
        return None
    if not isinstance(claims, list) or not all(
        isinstance(c, dict) and all(k in c for k in _CLAIM_KEYS) for c in claims
    ):
        return None  # (a KeyError here crashed the whole report)
    return res


def stale_reason(exp, old: dict, scale: str, seed: int, x64: bool) -> str | None:
    """Why results `old` of `exp` are not those this config and code would produce."""
    cfg = to_json(dataclasses.asdict(exp.config(scale)))
    env = old.get("environment", {})
    checks = (
        (old.get("scale") == scale, f"scale {old.get('scale')!r}, not {scale!r}"),
        (old.get("seed") == seed, f"seed {old.get('seed')!r}, not {seed}"),
        (old.get("config") == cfg, "another config"),
        (env.get("x64") == x64, f"x64={env.get('x64')}"),
        (old.get("code_version") == code_version(exp), "an older code version"),
        (env.get("backend") == jax.default_backend(), f"backend {env.get('backend')}"),
    )
    reasons = [why for ok, why in checks if not ok]
    return "; ".join(reasons) or None


def is_current(exp, out_root: Path, scale: str, seed: int, x64: bool) -> bool:
    """True if `out_root` holds results of `exp` for this config and code version."""
    path = out_root / exp.slug / "results.json"
    if not (path.parent / "figure.png").exists():
        return False
    old = _load(path)
    return old is not None and stale_reason(exp, old, scale, seed, x64) is None


def reproduce(args) -> int:
    """Runs the selected experiments (skipping current results) and writes REPORT.md."""
    registry = discover()
    names = args.names or list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        print(
            f"unknown experiment(s): {', '.join(unknown)}; see `jaxfeat list`",
            file=sys.stderr,
        )
        return 2
    missing = [m for m in ("sklearn", "scipy") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"jaxfeat reproduce: the experiments need {', '.join(missing)} (bundled "
            "data sets, rank statistics); install them with "
            '`pip install -e ".[experiments]"`',
            file=sys.stderr,
        )
        return 2
    out_root = Path(args.out)
    crashed, failed = [], []
    bar = tqdm(names, desc="jaxfeat reproduce", unit="exp", disable=args.no_progress)
    for name in bar:
        exp = registry[name]
        bar.set_postfix_str(name)
        if not args.force and is_current(exp, out_root, args.scale, args.seed, exp.x64):
            tqdm.write(f"[{exp.slug}] up to date, skipped (--force reruns)")
            # a check that failed in the kept results still fails this run
            if failed_checks(_load(out_root / exp.slug / "results.json")):
                failed.append(name)
            continue
        argv = [
            "--scale",
            args.scale,
            "--seed",
            str(args.seed),
            "--out-dir",
            str(out_root / exp.slug),
        ]
        if args.no_progress:
            argv.append("--no-progress")
        try:
            results = exp.main(argv)
        except Exception:  # keep going: one broken experiment must not lose the rest
            crashed.append(name)
            tqdm.write(f"[{exp.slug}] CRASHED\n{traceback.format_exc()}")
            continue
        if failed_checks(results):
            failed.append(name)
    report = write_report(
        out_root, registry, scale=args.scale, seed=args.seed, crashed=crashed
    )
    print(f"report: {report}")
    if crashed or failed:
        print(
            f"crashed: {crashed or 'none'}; failed checks: {failed or 'none'}",
            file=sys.stderr,
        )
        return 1
    return 0


def write_report(
    out_root: Path,
    registry: dict,
    *,
    scale: str | None = None,
    seed: int | None = None,
    crashed: list[str] = (),
) -> Path:
    """Writes `REPORT.md`: every claim with PASS/FAIL and its measured number.

    With `scale` and `seed` (a `reproduce` run), results in `out_root` that this run's
    config and code would not reproduce (another scale, seed or code version), and
    those of experiments that crashed in this run, are shown marked STALE and left out
    of the totals; unreadable results.json files are listed.
    """
    lines = ["# jaxfeat reproduction report", ""]
    lines += [
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. A `check` is a "
        "property the implementation must satisfy (a failure fails the run); "
        "a `finding` is a paper's claim, reported as measured.",
        "",
    ]
    summary, sections, not_reproduced, stale, unreadable = [], [], [], [], []
    for name, exp in registry.items():
        path = out_root / exp.slug / "results.json"
        if not path.exists():
            continue
        res = _load(path)
        if res is None:
            unreadable.append(f"- `{exp.slug}/results.json` is unreadable (rerun it)")
            continue
        why = None
        if name in crashed:
            why = "the experiment crashed in this run; these are earlier results"
        elif scale is not None:
            why = stale_reason(exp, res, scale, seed, exp.x64)
        env = res["environment"]
        title = f"## {exp.slug}: {res.get('title', exp.title)}"
        sections += [title + (" (STALE)" if why else ""), ""]
        if why:
            stale.append(f"- `{exp.slug}`: {why}")
            sections += [f"**STALE, not counted**: {why}.", ""]
        sections += [
            f"scale `{res['scale']}`, seed {res['seed']}, "
            f"{res['wall_time_s']:.1f} s on {env['backend']} "
            f"({env['device_kind']}), x64={env['x64']}, jax {env['jax']}",
            "",
            "| claim | kind | statement | measured | expected | result |",
            "|---|---|---|---|---|---|",
        ]
        for c in res["claims"]:
            status = (
                "n/a" if not c["checked"] else "PASS" if c["passed"] else "**FAIL**"
            )
            stmt = c["statement"] + (f" ({c['note']})" if c.get("note") else "")
            sections.append(
                f"| {_cell(c['id'])} | {_cell(c['kind'])} | {_cell(stmt)} | "
                f"{_cell(fmt(c['measured']))} | {_cell(fmt(c['expected']))} | "
                f"{status} |"
            )
            if why:
                continue
            summary.append((c["kind"], status))
            if c["kind"] == "finding" and status != "PASS" and status != "n/a":
                not_reproduced.append(f"- `{c['id']}` ({exp.slug}): {c['statement']}")
        table = res.get("metrics", {}).get("table_md")
        if isinstance(table, str) and table.strip():  # an experiment's own table
            sections += ["", table.strip()]
        sections += ["", f"![{exp.name}]({exp.slug}/figure.png)", ""]
    n_pass = sum(s == "PASS" for _, s in summary)
    n_na = sum(s == "n/a" for _, s in summary)
    n_fail_check = sum(k == "check" and s != "PASS" and s != "n/a" for k, s in summary)
    n_fail_find = sum(k == "finding" and s != "PASS" and s != "n/a" for k, s in summary)
    lines += [
        f"**{n_pass} of {len(summary) - n_na} claims pass**; failed checks: "
        f"{n_fail_check}; findings that did not reproduce: {n_fail_find}"
        + (f"; not evaluated at this scale (n/a): {n_na}" if n_na else "")
        + (f"; experiments that crashed: {', '.join(crashed)}" if crashed else "")
        + ".",
        "",
    ]
    if stale or unreadable:
        lines += ["Not counted above (stale or unreadable results):", ""]
        lines += [*stale, *unreadable, ""]
    if not_reproduced:
        lines += ["Findings that did not reproduce (reported, not hidden):", ""]
        lines += [*not_reproduced, ""]
    out_root.mkdir(parents=True, exist_ok=True)
    path = out_root / "REPORT.md"
    atomic_write_text(path, "\n".join(lines + sections) + "\n")
    return path


def list_experiments(_args) -> int:
    """Prints the registered experiments."""
    for name, exp in discover().items():
        print(f"{name:28s} {exp.pillar:11s} {exp.title}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `jaxfeat` command line."""
    p = argparse.ArgumentParser(prog="jaxfeat", description="jaxfeat experiments")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list registered experiments").set_defaults(
        func=list_experiments
    )
    r = sub.add_parser("reproduce", help="run experiments and write results/REPORT.md")
    r.add_argument("names", nargs="*", help="experiments to run (default: all)")
    r.add_argument("--scale", choices=SCALES, default="default")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="results", help="output root (default results/)")
    r.add_argument("--force", action="store_true", help="rerun up-to-date experiments")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=reproduce)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `jaxfeat`."""
    args = build_parser().parse_args(argv)
    return args.func(args)
