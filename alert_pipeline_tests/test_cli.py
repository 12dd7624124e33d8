"""The `alert-pipeline` command on real folders: the real samples, runs with nothing new, the demo,
what it says about bad files and undated records, its exit codes and its one-line failures."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy.exc
from dagster import AssetCheckKey, AssetKey

from alert_pipeline import cli
from alert_pipeline.cli import failure_reason, main
from alert_pipeline.errors import PipelineError
from alert_pipeline.home import UNDATED, Home
from alert_pipeline.runner import dagster_instance
from alert_pipeline.runs import LAUNCHED_BY
from alert_pipeline_tests.helpers import epoch, record, write_csv

REPO = Path(__file__).resolve().parents[1]

# The incidents ../shared/real-samples/README.md says the two files must produce.
EXPECTED_REAL_INCIDENTS = {
    ("fatal_errors_per_minute", None, "2021-09-11T10:55:04.376562Z", 85, 85),
    ("fatal_errors_per_minute", None, "2021-09-14T10:28:22.534183Z", 279, 279),
    (
        "fatal_errors_per_bundle_per_hour",
        "com.mytalkingcatemma.ballerinagames",
        "2021-09-11T10:55:04.697745Z",
        80,
        None,
    ),
    (
        "fatal_errors_per_bundle_per_hour",
        "com.mytalkingcatemma.ballerinagames",
        "2021-09-14T10:28:22.636219Z",
        206,
        None,
    ),
    (
        "fatal_errors_per_bundle_per_hour",
        "com.pregnantcatemma.virtualpet",
        "2021-09-14T10:28:25.268215Z",
        73,
        None,
    ),
}


def all_report_incidents(home: Path) -> list[dict]:
    return [
        incident
        for path in sorted(home.glob("reports/*/alert_report.json"))
        for incident in json.loads(path.read_text())["incidents"]
    ]


def command(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`alert-pipeline ARGS` in a new interpreter (settings are read when it starts)."""
    return subprocess.run(
        [sys.executable, "-m", "alert_pipeline.cli", *args],
        cwd=REPO,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def real_home(tmp_path: Path, real_samples: Path) -> Path:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for sample in real_samples.glob("*.csv"):
        shutil.copy(sample, incoming / sample.name)
    return tmp_path


def test_run_on_the_real_samples_finds_exactly_the_five_incidents(real_home: Path, capsys) -> None:
    assert main(["run", "--home", str(real_home)]) == 0
    out = capsys.readouterr().out
    assert "files: 2 ingested" in out
    assert "records: 368 read, 368 stored, 0 quarantined" in out
    assert "incidents fatal_errors_per_minute: 2" in out
    assert "incidents fatal_errors_per_bundle_per_hour: 3" in out

    found = {
        (
            i["rule"],
            i["group"].get("bundle_id"),
            i["start"],
            i["peak_count"],
            i["event_count"] if i["rule"] == "fatal_errors_per_minute" else None,
        )
        for i in all_report_incidents(real_home)
    }
    assert found == EXPECTED_REAL_INCIDENTS
    assert len(all_report_incidents(real_home)) == 5
    with dagster_instance(Home(real_home)) as instance:
        runs = instance.get_runs()
    assert runs and {run.tags[LAUNCHED_BY] for run in runs} == {"cli"}  # the Runs page says so


def test_second_run_with_nothing_new_does_nothing(real_home: Path, capsys) -> None:
    assert main(["run", "--home", str(real_home)]) == 0
    reports = {p: p.read_bytes() for p in real_home.glob("reports/*/*")}
    capsys.readouterr()

    assert main(["run", "--home", str(real_home)]) == 0

    out = capsys.readouterr().out
    assert "files: none new" in out and "nothing to materialize" in out
    assert {p: p.read_bytes() for p in real_home.glob("reports/*/*")} == reports


def test_a_rejected_file_and_a_duplicate_are_told_apart_and_exit_3(real_home: Path, capsys) -> None:
    incoming = real_home / "incoming"
    (incoming / "junk.csv").write_text("a,b,c\n1,2,3\n")
    shutil.copy(incoming / "example_positional_header.csv", incoming / "again.csv")

    assert main(["run", "--home", str(real_home)]) == cli.EXIT_FILES_WITHOUT_RECORDS

    out, err = capsys.readouterr()
    assert "files: 1 duplicate, 2 ingested, 1 rejected" in out
    rejected = next(line for line in out.splitlines() if line.startswith("rejected file junk.csv"))
    assert rejected.count("junk.csv") == 1, "the reason repeats the file name"
    assert "the first record has 3 fields" in rejected
    duplicate = next(line for line in out.splitlines() if line.startswith("duplicate"))
    # files are taken in name order: again.csv came first
    assert duplicate == (
        "duplicate file example_positional_header.csv: duplicate of again.csv, nothing new"
    )
    assert "junk.csv added no records: the file was rejected" in err
    assert (real_home / "quarantine" / "files" / "junk.csv.reason.txt").exists()
    assert len(all_report_incidents(real_home)) == 5


def test_an_iso_date_file_is_loud_everywhere_undated_records_go(tmp_path: Path, capsys) -> None:
    """`date` as ISO text: no record has a day. The run says so and exits 3, the check fails,
    and quarantine/day=undated holds the records."""
    iso = [record(date="2021-09-12T10:31:17Z") for _ in range(7)]
    write_csv(tmp_path / "incoming" / "iso.csv", iso)

    assert main(["run", "--home", str(tmp_path)]) == cli.EXIT_FILES_WITHOUT_RECORDS

    out, err = capsys.readouterr()
    assert "records: 7 read, 0 stored, 7 quarantined" in out
    assert "iso.csv added no records: all 7 were quarantined" in err
    assert "iso.csv: 7 records have no usable date (date: not a number ×7)" in err
    assert str(tmp_path / "quarantine" / "day=undated") in err
    (part,) = (tmp_path / "quarantine" / f"day={UNDATED}").glob("*.parquet")
    assert pq.ParquetFile(part).metadata.num_rows == 7
    with dagster_instance(Home(tmp_path)) as instance:
        check = AssetCheckKey(AssetKey("validated_logs"), "undated_records")
        evaluation = instance.get_latest_asset_check_evaluation_record(check).event.dagster_event
    assert evaluation.event_specific_data.passed is False
    assert evaluation.event_specific_data.metadata["undated_records"].value == 7

    # The producer fixes the file: the check passes again.
    write_csv(tmp_path / "incoming" / "iso.csv", [record(date=epoch("2021-09-12", 60))])
    assert main(["run", "--home", str(tmp_path)]) == 0
    with dagster_instance(Home(tmp_path)) as instance:
        evaluation = instance.get_latest_asset_check_evaluation_record(check).event.dagster_event
    assert evaluation.event_specific_data.passed is True
    assert "no usable date" not in capsys.readouterr().err


def test_a_failing_step_is_one_line_naming_it_then_the_next_run_converges(tmp_path, capsys):
    write_csv(tmp_path / "incoming" / "a.csv", [record(date=epoch("2021-09-12", 60))])
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "2021-09-12").write_text("not a folder")  # the report cannot be written
    assert main(["run", "--home", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("alert-pipeline: days 2021-09-12…2021-09-12 failed: alert_report: ")
    assert "FileExistsError" in err and err.count("\n") == 1
    (tmp_path / "reports" / "2021-09-12").unlink()
    assert main(["run", "--home", str(tmp_path)]) == 0
    assert "files: none new" in capsys.readouterr().out
    assert json.loads((tmp_path / "reports" / "2021-09-12" / "alert_report.json").read_text())


def test_demo_runs_the_bundled_sample_and_prints_incidents(tmp_path: Path, capsys) -> None:
    assert cli.SAMPLE.exists(), "data/sample_logs.csv must be committed"
    home = tmp_path / "new"
    assert main(["demo", "--home", str(home)]) == 0  # the demo makes its own home
    out = capsys.readouterr().out
    incidents = all_report_incidents(home)
    assert incidents, "the sample has planted bursts"
    assert f"incidents in {len(list(home.glob('reports/*')))} daily reports:" in out
    for incident in incidents:
        assert incident["start"] in out
    assert "make ui" in out
    assert main(["demo", "--home", str(home)]) == 0  # again: nothing new, same incidents
    assert all_report_incidents(home) == incidents


def test_generate_command_writes_files(tmp_path: Path, capsys) -> None:
    code = main(["generate", "--out", str(tmp_path), "--rows", "500", "--days", "2", "--seed", "3"])
    assert code == 0
    assert "wrote 500 records in 2 files" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "logs_2021-09-10.csv",
        "logs_2021-09-11.csv",
    ]


@pytest.mark.parametrize(
    ("home", "words"),
    [
        ("missing", "does not exist (check the path, or add --create)"),
        ("a-file", "is not a folder"),
        ("", "the home folder is empty"),
        ("  ", "the home folder is empty"),
    ],
)
def test_a_home_that_cannot_be_used_is_one_line_and_exit_1(tmp_path, capsys, home, words) -> None:
    (tmp_path / "a-file").write_text("x")
    argument = str(tmp_path / home) if home.strip() else home
    assert main(["run", "--home", argument]) == 1
    err = capsys.readouterr().err
    assert err.startswith("alert-pipeline: ") and err.count("\n") == 1 and words in err
    assert not (tmp_path / "missing").exists(), "a typo must not create a home"


def test_create_makes_a_missing_home(tmp_path, capsys) -> None:
    assert main(["run", "--home", str(tmp_path / "new"), "--create"]) == 0
    assert (tmp_path / "new" / "incoming").is_dir()
    assert "files: none new" in capsys.readouterr().out


def test_verbose_shows_the_traceback(tmp_path) -> None:
    with pytest.raises(PipelineError, match="does not exist"):
        main(["run", "--home", str(tmp_path / "missing"), "--verbose"])


@pytest.mark.parametrize(
    ("error", "reason"),
    [  # failures not staged for real here (the tests run as root; disk full: test_recovery.py)
        (PermissionError(13, "Permission denied", "/h/reports"), "Permission denied: /h/reports"),
        (
            sqlalchemy.exc.OperationalError(
                "INSERT", {}, sqlite3.OperationalError("database or disk is full")
            ),
            "the Dagster instance's database: database or disk is full",
        ),
    ],
)
def test_known_failures_have_a_one_line_reason(error, reason) -> None:
    assert failure_reason(error) == reason


def test_a_locked_dagster_database_is_one_line_then_the_next_run_converges(tmp_path, capsys):
    """Another process holds the instance's SQLite database (say, `make ui` in a long write)."""
    assert main(["run", "--home", str(tmp_path), "--create"]) == 0  # creates the instance
    write_csv(tmp_path / "incoming" / "a.csv", [record(date=epoch("2021-09-12", 60))])
    holder = sqlite3.connect(tmp_path / "dagster" / "history" / "runs.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert main(["run", "--home", str(tmp_path)]) == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert capsys.readouterr().err == (
        "alert-pipeline: the Dagster instance's database: database is locked\n"
    )
    assert main(["run", "--home", str(tmp_path)]) == 0
    assert "partitions materialized: 2021-09-12" in capsys.readouterr().out


def test_a_bug_is_not_dressed_up_as_a_known_failure() -> None:
    assert failure_reason(KeyError("x")) is None


def test_a_bad_setting_is_one_line_naming_it(tmp_path) -> None:
    result = command("run", "--home", str(tmp_path), ALERT_PIPELINE_SETTLE_SECONDS="soon")
    assert result.returncode == 1
    assert result.stderr == (
        "alert-pipeline: ALERT_PIPELINE_SETTLE_SECONDS='soon' is not a number of seconds ≥ 0\n"
    )


def test_a_closed_stdout_ends_quietly(tmp_path) -> None:
    """`alert-pipeline demo | head -0`: the reader is gone before anything is printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "alert_pipeline.cli", "demo", "--home", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=300) == 0
    assert err == "", err
    assert all_report_incidents(tmp_path), "the work was done all the same"
