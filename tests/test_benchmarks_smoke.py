"""Benchmarks run at smoke size and write the JSON schema other tools read."""

import json

import pytest

from benchmarks import linear_ssl as bench


def _check_peak_row(data, n):
    """The jnp.dot peak is a row like the others: FLOP/s of its fastest repeat."""
    (row,) = [r for r in data["rows"] if r["task"] == "matmul_peak"]
    assert row["min_s"] <= row["median_s"] <= row["max_s"]
    assert row["flop_per_s"] == pytest.approx(2 * n**3 / row["min_s"], rel=1e-12)
    assert data["summary"]["matmul_peak_flop_per_s"] == row["flop_per_s"]


def test_linear_ssl_benchmark_smoke(tmp_path):
    out = tmp_path / "linear_ssl.json"
    bench.main(["--smoke", "--repeats", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "linear_ssl"
    assert {"jax", "backend", "device"} <= set(data["environment"])
    for row in data["rows"]:
        if "median_s" in row:
            assert row["min_s"] <= row["median_s"] <= row["max_s"]
    summary = data["summary"]
    for key in (
        "speedup_vs_numpy",
        "critical_time_points_per_s",
        "gd_fraction_of_matmul_peak",
        "speedup_vs_scipy_quad",
    ):
        assert isinstance(summary[key], float) and summary[key] > 0
    # no time is asserted: only that ours and the reference agreed (checked inside)
    assert summary["critical_time_max_rel_err_vs_scipy"] < 1e-3
    _check_peak_row(data, 512)


def test_ntk_benchmark_smoke(tmp_path):
    from benchmarks import ntk as ntk_bench

    out = tmp_path / "ntk.json"
    summary = ntk_bench.main(
        ["--smoke", "--repeats", "1", "--no-memory", "--out", str(out)]
    )
    data = json.loads(out.read_text())
    assert data["benchmark"] == "ntk"
    # all algorithms computed the same kernel (float32, highest matmul precision)
    assert summary["max_rel_err_between_algorithms"] < 1e-5
    impls = {r["impl"] for r in data["rows"]}
    assert {
        "jaxfeat structured",
        "jaxfeat jacobian",
        "jaxfeat ntvp",
        "jaxfeat naive",
    } <= impls


def test_kan_benchmark_smoke(tmp_path):
    from benchmarks import kan as kan_bench

    out = tmp_path / "kan.json"
    summary = kan_bench.main(["--smoke", "--repeats", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "kan"
    assert data["reference"] is False  # pykan / jaxkan never run at smoke size
    for row in data["rows"]:
        if "median_s" in row:
            assert row["min_s"] <= row["median_s"] <= row["max_s"]
    for key in (
        "samples_per_s_jaxfeat",
        "samples_per_s_jaxfeat_uniform",
        "train_fraction_of_matmul_peak",
        "crossval_s",
        "crossval_scoring_only_s",
    ):
        assert isinstance(summary[key], float) and summary[key] > 0
    _check_peak_row(data, kan_bench.SIZES["smoke"]["peak_n"])
    assert {r["impl"] for r in data["rows"] if r["task"] == "train"} == {
        "jaxfeat",
        "jaxfeat_uniform",
        "jaxkan",
        "pykan",
    }


def test_influence_benchmark_smoke(tmp_path):
    from benchmarks import influence as inf_bench

    out = tmp_path / "influence.json"
    summary = inf_bench.main(["--smoke", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "influence"
    for row in data["rows"]:
        assert row["min"] <= row["median"] <= row["max"]
    assert summary["jaxfeat_total_s"] > 0 and summary["n_query"] == 10


def test_influence_benchmark_refuses_to_overwrite_results_without_kronfluence():
    """Without kronfluence a full run silently dropped the comparison and would
    have overwritten the committed headline (speedup, Pearson) without it."""
    import importlib.util

    from benchmarks import influence as inf_bench

    if importlib.util.find_spec("kronfluence") is not None:
        pytest.skip("kronfluence is installed: the comparison runs")
    with pytest.raises(SystemExit) as err:
        inf_bench.main(["--repeats", "1"])
    assert err.value.code == 2


def test_ntk_peak_memory_is_the_child_process_own():
    """ru_maxrss of a subprocess child starts at its parent's peak on Linux: every
    committed n = 256 row read the benchmark process's 2269 MB. The child now
    reports its own high-water mark: unchanged when the parent grows by 600 MB."""
    import numpy as np

    from benchmarks.ntk import own_peak_kb, peak_memory

    before = peak_memory((16,), 8, True, "structured")
    big = np.ones(600 * 2**20 // 8) + 1  # the parent's peak grows by >= 600 MB
    assert own_peak_kb() / 1024 > 600
    after = peak_memory((16,), 8, True, "structured")
    del big
    assert before is not None and after is not None
    assert abs(after - before) < 100, (before, after)  # MB


def test_ntk_and_kan_benchmarks_refuse_to_overwrite_without_references():
    """A full run without the reference libraries dropped speedup_vs_* and would
    have overwritten the committed JSON (as influence already refused to)."""
    import importlib.util

    from benchmarks import kan as kan_bench
    from benchmarks import ntk as ntk_bench

    with pytest.raises(SystemExit) as err:
        ntk_bench.main(["--repeats", "1"])  # no --nt-python, no --out
    assert err.value.code == 2
    if importlib.util.find_spec("kan") and importlib.util.find_spec("jaxkan"):
        pytest.skip("pykan and jaxkan are installed: the comparison runs")
    with pytest.raises(SystemExit) as err:
        kan_bench.main(["--repeats", "1"])
    assert err.value.code == 2
