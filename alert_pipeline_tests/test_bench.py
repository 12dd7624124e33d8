"""`alert-pipeline bench`: the competitors agree on a small file; correctness only, no timings."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from alert_pipeline import bench, bench_competitors, bench_fairness
from alert_pipeline.cli import main
from alert_pipeline.registry import RULES

ROWS, DAYS = 3000, 2
TABLE_ROWS = (
    "project",
    "project_dagster",
    "polars_copy",
    "polars",
    "duckdb_copy",
    "duckdb",
    "pandas_seed",
)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def small_csv(work: Path) -> Path:
    return bench.bench_input(work, ROWS, DAYS, 0)


def test_bench_command_runs_every_competitor_and_they_agree(
    work: Path, small_csv: Path, capsys
) -> None:
    report = work / "figures.json"
    argv = ["bench", "--rows", str(ROWS), "--days", str(DAYS), "--repeat", "1"]
    assert main([*argv, "--work", str(work), "--json", str(report)]) == 0

    out = capsys.readouterr().out
    assert "| competitor | median wall s | records/s | peak RSS MB | × polars copy | CPU s |" in out
    for name in TABLE_ROWS:
        assert f"\n| {name} | " in out
    assert "fairness: all 5 competitors" in out and "FAILED" not in out
    assert "machine: " in out and "command: alert-pipeline bench --rows 3000" in out

    document = json.loads(report.read_text())
    assert document["agree"] is True and document["problems"] == []
    assert list(document["figures"]) == list(TABLE_ROWS)
    for name, figures in document["figures"].items():
        for key in ("median_wall_s", "median_cpu_s", "records_per_s", "peak_rss_mb"):
            assert figures[key] > 0, (name, key)
        assert figures["x_polars_copy"] > 0, name
    for whole in ("polars", "duckdb"):  # a copy's CPU time is the first part of its whole run
        cpu = document["figures"][whole]["median_cpu_s"]
        assert 0 < document["figures"][f"{whole}_copy"]["median_cpu_s"] <= cpu
    assert document["figures"]["polars_copy"]["x_polars_copy"] == 1.0
    # The planted bursts breach both rules: the check compared something.
    assert set(document["breach_events"]) == {rule.name for rule in RULES}
    assert all(count > 0 for count in document["breach_events"].values())
    for results in document["runs"].values():
        assert [r["rows"] for r in results] == [ROWS]
    assert (work / "data" / f"rows-{ROWS}_days-{DAYS}_seed-0" / "bench.csv") == small_csv
    assert list((work / "runs").iterdir()) == []  # run folders are cleaned up


def test_workers_in_process_report_the_same_breach_events(work: Path, small_csv: Path) -> None:
    """The same competitors without the child process (so that coverage sees them)."""
    found = {}
    for name, worker in bench_competitors.WORKERS.items():
        scratch = work / f"in-process-{name}"
        scratch.mkdir()
        result = worker(small_csv, scratch)
        assert result["rows"] == ROWS and result["wall_s"] > 0
        if name == "project":
            figures = bench_fairness.home_figures(scratch / "home")
            assert figures["problems"] == [] and figures["rows"] == ROWS
            found[name] = figures["breaches"]
        else:
            found[name] = bench_fairness.breaches_from_json(result["breaches"])
    assert found["project"] == found["polars"] == found["duckdb"] == found["pandas_seed"]
    assert all(found["project"][rule.name] for rule in RULES)


def brute_force_breaches(times, groups, threshold, window_us) -> set:
    groups = [None] * len(times) if groups is None else list(groups)
    return {
        (g, t)
        for g, t in zip(groups, times, strict=True)
        if sum(1 for h, u in zip(groups, times, strict=True) if h == g and t - window_us < u <= t)
        > threshold
    }


def test_breach_events_match_the_definition_with_ties_and_exact_window_edges() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(0, 80))
        times = rng.integers(0, 40, n) * 5  # many ties and gaps of exactly the window
        labels = ["a", "b", None]
        codes = rng.integers(0, len(labels), n)
        groups = [labels[c] for c in codes]
        for grouped in (None, groups):
            expected = brute_force_breaches(times.tolist(), grouped, 3, 20)
            assert bench_fairness.breach_events(times, grouped, 3, 20) == expected
        # Dictionary-encoded groups: integer codes into labels.
        assert bench_fairness.breach_events(times, codes, 3, 20, labels) == expected


def test_incidents_from_breaches_split_at_gaps_of_one_window() -> None:
    breaches = {(None, 0), (None, 5), (None, 15), (None, 25), ("x", 1)}
    assert bench_fairness.incidents_from_breaches(breaches, 10) == {
        (None, 0, 5),
        (None, 15, 15),
        (None, 25, 25),
        ("x", 1, 1),
    }


def fake_result(breaches: dict, rows: int = 200) -> dict:
    return {
        "wall_s": 1.0,
        "cpu_s": 1.8,
        "copy_s": 0.5,
        "copy_cpu_s": 0.9,
        "process_s": 1.5,
        "maxrss_kb": 10_240,
        "rss_after_copy_kb": 10_240,
        "user_s": 1.0,
        "sys_s": 0.1,
        "rows": rows,
        "breaches": breaches,
    }


def test_disagreeing_competitors_fail_the_command_loudly(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    def fake_run_once(competitor: str, csv: Path, scratch: Path) -> dict:
        events = {(None, 1), (None, 2)} if competitor != "pandas_seed" else {(None, 1)}
        return fake_result({RULES[0].name: events}, rows=199 if competitor == "duckdb" else 200)

    monkeypatch.setattr(bench, "run_once", fake_run_once)
    report = tmp_path / "figures.json"
    code = bench.run_bench(200, repeat=1, work=tmp_path, json_path=report)

    assert code == 1
    out = capsys.readouterr().out
    assert "FAIRNESS CHECK FAILED" in out
    assert "pandas_seed (run 1) vs project (run 1)" in out
    assert "duckdb (run 1): loaded 199 records, not 200" in out
    assert json.loads(report.read_text())["agree"] is False


def test_bad_arguments_are_refused(tmp_path: Path, capsys) -> None:
    assert bench.run_bench(0, work=tmp_path) == 1
    assert bench.run_bench(10, competitors=["spark"], work=tmp_path) == 1
    assert "unknown competitors: spark" in capsys.readouterr().err


def test_a_failing_competitor_stops_the_bench_with_its_output(tmp_path: Path) -> None:
    scratch = tmp_path / "run"
    with pytest.raises(bench.BenchFailed, match="duckdb exited with 1"):
        bench.run_once("duckdb", tmp_path / "missing.csv", scratch)


def test_peak_rss_is_the_childs_own_not_the_bench_process(tmp_path: Path) -> None:
    """The launcher keeps this (large) test process's hiwater RSS out of the child's figure."""
    ballast = bytearray(300 << 20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    small = bench._launch([sys.executable, "-S", "-c", "pass"], tmp_path)
    big = bench._launch(
        [sys.executable, "-S", "-c", "b = bytearray(200 << 20); b[::4096] = b'1' * len(b[::4096])"],
        tmp_path,
    )
    del ballast
    assert small["exit_code"] == big["exit_code"] == 0
    assert small["maxrss_kb"] < 100 * 1024
    assert big["maxrss_kb"] > 200 * 1024
