"""`jaxfeat list` / `jaxfeat reproduce`: resume, --force, REPORT.md, determinism."""

import dataclasses
import json

from experiments import _runner
from jaxfeat import _cli

NAME = "depth_amplification"  # the cheapest experiment (closed forms only)


def _reproduce(tmp_path, *extra):
    return _cli.main(
        [
            "reproduce",
            NAME,
            "--scale",
            "smoke",
            "--out",
            str(tmp_path),
            "--no-progress",
            *extra,
        ]
    )


def test_list(capsys):
    assert _cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in _runner.discover():
        assert name in out


def test_reproduce_resume_force_and_report(tmp_path, capsys):
    assert _reproduce(tmp_path) == 0
    res = tmp_path / "linear_ssl" / NAME / "results.json"
    first = json.loads(res.read_text())
    report = (tmp_path / "REPORT.md").read_text()
    assert "| LSSL-7.ratio |" in report and "PASS" in report
    assert f"linear_ssl/{NAME}/figure.png" in report
    capsys.readouterr()
    assert _reproduce(tmp_path) == 0  # same config and code: skipped
    assert "up to date, skipped" in capsys.readouterr().out
    assert json.loads(res.read_text())["wall_time_s"] == first["wall_time_s"]
    assert _reproduce(tmp_path, "--force") == 0
    assert "up to date" not in capsys.readouterr().out


def test_same_seed_same_numbers(tmp_path):
    exp = _runner.discover()["dynamic_slow_feature"]  # uses the key (sampling)
    runs = [
        exp.main(
            [
                "--smoke",
                "--no-progress",
                "--seed",
                "3",
                "--out-dir",
                str(tmp_path / str(i)),
            ]
        )
        for i in range(2)
    ]
    assert runs[0]["metrics"] == runs[1]["metrics"]
    other = exp.main(
        [
            "--smoke",
            "--no-progress",
            "--seed",
            "4",
            "--out-dir",
            str(tmp_path / "other"),
        ]
    )
    assert other["metrics"] != runs[0]["metrics"]


def test_unknown_experiment_is_an_error(tmp_path):
    assert _cli.main(["reproduce", "no_such_experiment", "--out", str(tmp_path)]) == 2


def test_failed_check_sets_exit_code(tmp_path):
    exp = _runner.discover()[NAME]
    real_run = exp.run

    def broken(cfg, key, progress=True):
        out = real_run(cfg, key, progress)
        for c in out.claims:
            if c.kind == "check":
                c.passed = False
        return out

    broken_exp = dataclasses.replace(exp, run=broken)
    assert broken_exp.cli(["--smoke", "--no-progress", "--out-dir", str(tmp_path)]) == 1
    assert exp.cli(["--smoke", "--no-progress", "--out-dir", str(tmp_path)]) == 0


def test_report_marks_crashed_and_stale_results_and_survives_bad_json(
    tmp_path, monkeypatch, capsys
):
    assert _reproduce(tmp_path) == 0
    report = tmp_path / "REPORT.md"
    assert "STALE" not in report.read_text()
    assert oct(report.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's mode
    # A crash in a --force rerun: exit 1, and the earlier results are not counted.
    registry = _runner.discover()
    exp = registry[NAME]

    def crash(cfg, key, progress=True):
        raise RuntimeError("boom")

    monkeypatch.setitem(registry, NAME, dataclasses.replace(exp, run=crash))
    monkeypatch.setattr(_runner, "discover", lambda: registry)
    assert _reproduce(tmp_path, "--force") == 1
    text = report.read_text()
    assert "STALE" in text and "crashed" in text and "**0 of 0 claims pass**" in text
    monkeypatch.undo()
    # A truncated results.json elsewhere in the folder is listed, not fatal.
    other = tmp_path / "linear_ssl" / "rho_greedy"
    other.mkdir(parents=True)
    (other / "results.json").write_text('{"experiment": ')
    capsys.readouterr()
    assert _reproduce(tmp_path) == 0
    assert "rho_greedy/results.json` is unreadable" in report.read_text()
    # Results of another scale are shown but not counted.
    _runner.write_report(tmp_path, _runner.discover(), scale="default", seed=0)
    text = report.read_text()
    assert "scale 'smoke', not 'default'" in text and "**0 of 0 claims pass**" in text


def test_code_version_covers_pillar_helpers(tmp_path, monkeypatch):
    # A change in a private helper module of the pillar folder changes the version.
    from pathlib import Path

    from experiments import _common

    exp = _runner.discover()[NAME]
    before = _common.code_version(exp)
    helper = Path(_common.__file__).parent / "linear_ssl" / "_shared.py"
    original = helper.read_bytes()
    try:
        helper.write_bytes(original + b"\n# touched\n")
        assert _common.code_version(exp) != before
    finally:
        helper.write_bytes(original)
    assert _common.code_version(exp) == before


def test_resume_keeps_the_exit_code_of_a_failed_check(tmp_path, capsys):
    """A rerun skipped the up-to-date results and exited 0 although they held a
    failed check (REPORT.md in the same folder said FAIL)."""
    assert _reproduce(tmp_path) == 0
    res = tmp_path / "linear_ssl" / NAME / "results.json"
    data = json.loads(res.read_text())
    check = next(c for c in data["claims"] if c["kind"] == "check")
    check["passed"] = False
    res.write_text(json.dumps(data))
    capsys.readouterr()
    assert _reproduce(tmp_path) == 1
    assert "up to date, skipped" in capsys.readouterr().out


def test_unevaluated_claims_are_null_not_failed(tmp_path):
    from experiments._common import Claim

    c = Claim("LSSL-X", "check", "s", False, None, None, checked=False)
    assert c.passed is None
    assert Claim("LSSL-X", "check", "s", 0, None, None).passed is False


def test_results_carry_the_code_version_of_when_the_module_loaded(tmp_path):
    """The version was hashed after the run, from the files on disk: an edit saved
    during a run stamped the old code's numbers with the new code's version, and
    the next reproduce skipped them as current. Results now carry the version
    of the loaded code, so such an edit makes them stale."""
    from pathlib import Path

    from experiments import _common

    exp = _runner.discover()[NAME]
    assert exp.version == _common.code_version(exp)
    helper = Path(_common.__file__).parent / "linear_ssl" / "_shared.py"
    original = helper.read_bytes()
    try:
        helper.write_bytes(original + b"\n# edited during the run\n")
        res = exp.main(
            ["--scale", "smoke", "--out-dir", str(tmp_path / exp.slug), "--no-progress"]
        )
        assert res["code_version"] == exp.version != _common.code_version(exp)
        assert not _runner.is_current(exp, tmp_path, "smoke", 0, exp.x64)
    finally:
        helper.write_bytes(original)
    assert _runner.is_current(exp, tmp_path, "smoke", 0, exp.x64)


def test_report_escapes_pipes_and_lists_incomplete_results(tmp_path):
    """`|bias| < 0.05` in an expected value split its REPORT.md row (8 cells under
    6 headers, PASS/FAIL pushed out of its column); a results.json whose claim
    lacked `checked` crashed the whole report with a KeyError."""
    import json
    import re

    assert _reproduce(tmp_path) == 0
    exp = _runner.discover()[NAME]
    path = tmp_path / exp.slug / "results.json"
    res = json.loads(path.read_text())
    res["claims"][0]["expected"] = "|bias| < 0.05"
    res["claims"][0]["measured"] = "a|b"
    path.write_text(json.dumps(res))
    report = _runner.write_report(tmp_path, _runner.discover(), scale="smoke", seed=0)
    row = next(
        ln
        for ln in report.read_text().splitlines()
        if ln.startswith("| " + res["claims"][0]["id"] + " ")
    )
    cells = re.split(r"(?<!\\)\|", row)[1:-1]
    assert len(cells) == 6 and cells[-1].strip() in ("PASS", "**FAIL**", "n/a")
    del res["claims"][1]["checked"]
    path.write_text(json.dumps(res))
    report = _runner.write_report(tmp_path, _runner.discover(), scale="smoke", seed=0)
    assert f"{exp.slug}/results.json` is unreadable" in report.read_text()
