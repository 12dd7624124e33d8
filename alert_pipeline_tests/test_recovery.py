"""Self-healing runs: whatever interrupted `alert-pipeline run` — SIGKILL at any point, a full disk
during ingestion or during the Dagster phase — the next run finishes the work, and the reports
are those of a clean run.

Killed runs are real `alert-pipeline run` processes (crash_worker.py), SIGKILLed after a random
time, before their n-th rename (every write is a temp file renamed into place: ingestion, rule
outputs, reports), or right after the ingestion returned (the ledger is written, nothing is
materialized: the case that used to lose alerts for good).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, RunsFilter
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alert_pipeline.cli import main
from alert_pipeline.generate import generate_logs
from alert_pipeline.home import Home
from alert_pipeline.runner import dagster_instance, run_pipeline
from alert_pipeline.warehouse import stored_rows
from alert_pipeline_tests.helpers import (
    need,
    one_shot,
    read_records,
    reported_incidents,
    write_split,
)

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Dataset:
    files: list[Path]
    expected: set[tuple]  # the one-shot incidents
    reports: dict[str, dict]  # a clean run's reports, without generated_at


def reports(home: Path) -> dict[str, dict]:
    return {
        path.parent.name: {
            k: v for k, v in json.loads(path.read_text()).items() if k != "generated_at"
        }
        for path in sorted(home.glob("reports/*/alert_report.json"))
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    root = tmp_path_factory.mktemp("recovery")
    generated = generate_logs(root / "gen", rows=3000, days=3, seed=17, one_file="all.csv")
    records = read_records(generated.files[0])
    (root / "split").mkdir()
    files = write_split(records, root / "split", random.Random(17))
    clean = Home(root / "clean").create()
    for path in files:
        shutil.copy(path, clean.incoming / path.name)
    run_pipeline(clean)
    expected = one_shot(records)
    assert expected and set(reported_incidents(clean.root)) == expected
    return Dataset(files, expected, reports(clean.root))


def killed_run(home: Home, kill: tuple[str, float]) -> int:
    """`alert-pipeline run` in a subprocess, killed as `kill` says; its exit status."""
    how, value = kill
    env = os.environ | {"PYTHONPATH": str(REPO)}
    if how == "replace":
        env["ALERT_PIPELINE_TEST_KILL_BEFORE_REPLACE"] = str(int(value))
    elif how == "after_ingest":
        env["ALERT_PIPELINE_TEST_KILL_AFTER_INGEST"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "alert_pipeline_tests.crash_worker", "run", str(home.root)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    if how == "time":
        time.sleep(value)
        process.kill()
    process.communicate(timeout=300)
    return process.returncode


def assert_converged(home: Home, dataset: Dataset, capsys) -> None:
    """One clean run: the reports are a clean run's, each incident once, counts reconcile,
    no run is left STARTED, and a second run has nothing to do."""
    assert main(["run", "--home", str(home.root)]) == 0
    assert reports(home.root) == dataset.reports
    reported = reported_incidents(home.root)
    assert len(reported) == len(set(reported)) and set(reported) == dataset.expected
    for day, report in dataset.reports.items():
        assert report["records"]["stored"] == stored_rows(home, day)
    with dagster_instance(home) as instance:
        started = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    assert started == []
    capsys.readouterr()
    assert main(["run", "--home", str(home.root)]) == 0
    assert "nothing to materialize" in capsys.readouterr().out


KILLS = st.one_of(
    st.just(("after_ingest", 0)),
    st.tuples(st.just("replace"), st.integers(1, 60)),
    st.tuples(st.just("time"), st.floats(0.0, 4.0)),
)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    order=st.randoms(use_true_random=False),
    first_kills=st.lists(KILLS, min_size=1, max_size=2),
    later_kills=st.lists(KILLS, max_size=2),
)
@example(order=random.Random(0), first_kills=[("after_ingest", 0)], later_kills=[])
def test_runs_killed_anywhere_then_one_clean_run_give_the_clean_reports(
    dataset, tmp_path_factory, capsys, order, first_kills, later_kills
) -> None:
    files = list(dataset.files)
    order.shuffle(files)
    cut = order.randint(1, len(files))
    home = Home(tmp_path_factory.mktemp("killed")).create()
    codes = []
    for batch, kills in ((files[:cut], first_kills), (files[cut:], later_kills)):
        for path in batch:  # new files arrive between attempts
            shutil.copy(path, home.incoming / path.name)
        codes += [killed_run(home, kill) for kill in kills]
    print(f"kills {first_kills} + {later_kills}: exit codes {codes}")
    assert_converged(home, dataset, capsys)


def test_a_late_burst_killed_after_ingestion_is_reported_by_the_next_run(tmp_path, capsys) -> None:
    """The reproduction of the bug this fixes: a finished home, a late file for an old day
    holding a burst, the run killed as soon as its ledger entry is written. The next run must
    report the burst, though it finds no new file."""
    home = Home(tmp_path / "home").create()
    days = generate_logs(tmp_path / "gen", rows=2000, days=2, seed=3)
    shutil.copy(days.files[0], home.incoming / days.files[0].name)
    assert main(["run", "--home", str(home.root)]) == 0
    before = reports(home.root)
    late = days.files[1]
    shutil.copy(late, home.incoming / late.name)

    assert killed_run(home, ("after_ingest", 0)) == -signal.SIGKILL
    capsys.readouterr()
    assert main(["run", "--home", str(home.root)]) == 0

    out = capsys.readouterr().out
    assert "files: none new" in out and "partitions materialized: " in out
    after = reports(home.root)
    late_day = late.stem.removeprefix("logs_")
    assert late_day not in before and after[late_day]["incidents"], "the late burst is reported"
    assert after[late_day]["records"]["stored"] == stored_rows(home, late_day) > 0


# --- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def mount_tmpfs():
    """Mount small tmpfs file systems (root only); unmounted at the end."""
    need(os.geteuid() == 0 and shutil.which("mount"), "mounting a tmpfs needs root")
    mounted = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def resize(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def one_line_failure(capsys, home: Home) -> str:
    assert main(["run", "--home", str(home.root)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("alert-pipeline: ") and err.count("\n") == 1, err
    return err


def test_a_disk_full_during_ingestion_is_one_line_then_the_next_run_converges(
    dataset, mount_tmpfs, tmp_path, capsys
) -> None:
    home = Home(mount_tmpfs(tmp_path / "home", "2m")).create()
    for path in dataset.files:
        shutil.copy(path, home.incoming / path.name)
    ballast = home.root / "ballast"
    free = shutil.disk_usage(home.root).free
    ballast.write_bytes(b"\0" * (free - 64 * 1024))  # leave 64 KiB: not enough for the Parquet

    err = one_line_failure(capsys, home)
    assert "No space left on device" in err

    ballast.unlink()
    resize(home.root, "64m")
    assert_converged(home, dataset, capsys)


def test_a_disk_full_during_the_dagster_phase_is_one_line_then_the_next_run_converges(
    dataset, mount_tmpfs, tmp_path, capsys
) -> None:
    home = Home(tmp_path / "home").create()
    instance = mount_tmpfs(home.dagster, "64m")
    first, rest = dataset.files[:4], dataset.files[4:]
    for path in first:
        shutil.copy(path, home.incoming / path.name)
    assert main(["run", "--home", str(home.root)]) == 0
    ballast = instance / "ballast"
    ballast.write_bytes(b"\0" * shutil.disk_usage(instance).free)  # the instance's disk is full
    for path in rest:
        shutil.copy(path, home.incoming / path.name)
    capsys.readouterr()

    err = one_line_failure(capsys, home)
    # SQLite says "database or disk is full", or "disk I/O error" when its journal cannot grow
    assert "disk is full" in err or "disk full" in err or "No space left on device" in err

    ballast.unlink()
    assert_converged(home, dataset, capsys)
