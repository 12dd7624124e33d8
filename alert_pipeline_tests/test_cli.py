"""The `alert-pipeline` command on real folders: run twice, the real samples, the demo, errors."""

import json
import shutil
from pathlib import Path

import pytest

from alert_pipeline import cli
from alert_pipeline.cli import main
from alert_pipeline.partitions import affected_partitions

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


def test_second_run_with_nothing_new_does_nothing(real_home: Path, capsys) -> None:
    assert main(["run", "--home", str(real_home)]) == 0
    reports = {p: p.read_bytes() for p in real_home.glob("reports/*/*")}
    capsys.readouterr()

    assert main(["run", "--home", str(real_home)]) == 0

    out = capsys.readouterr().out
    assert "files: none new" in out and "nothing new to materialize" in out
    assert {p: p.read_bytes() for p in real_home.glob("reports/*/*")} == reports


def test_run_reports_a_rejected_file_and_still_exits_zero(real_home: Path, capsys) -> None:
    (real_home / "incoming" / "junk.csv").write_text("a,b,c\n1,2,3\n")
    assert main(["run", "--home", str(real_home)]) == 0
    out = capsys.readouterr().out
    assert "1 rejected" in out and "rejected file junk.csv" in out
    assert (real_home / "quarantine" / "files" / "junk.csv.reason.txt").exists()
    assert len(all_report_incidents(real_home)) == 5


def test_run_that_cannot_start_exits_non_zero_with_one_line(tmp_path: Path, capsys) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert main(["run", "--home", str(not_a_folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("alert-pipeline: ") and "\n" not in err


def test_demo_runs_the_bundled_sample_and_prints_incidents(tmp_path: Path, capsys) -> None:
    assert cli.SAMPLE.exists(), "data/sample_logs.csv must be committed"
    assert main(["demo", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    incidents = all_report_incidents(tmp_path)
    assert incidents, "the sample has planted bursts"
    assert f"incidents in {len(list(tmp_path.glob('reports/*')))} daily reports:" in out
    for incident in incidents:
        assert incident["start"] in out
    assert "make ui" in out
    assert main(["demo", "--home", str(tmp_path)]) == 0  # again: nothing new, same incidents
    assert all_report_incidents(tmp_path) == incidents


def test_generate_command_writes_files(tmp_path: Path, capsys) -> None:
    code = main(["generate", "--out", str(tmp_path), "--rows", "500", "--days", "2", "--seed", "3"])
    assert code == 0
    assert "wrote 500 records in 2 files" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "logs_2021-09-10.csv",
        "logs_2021-09-11.csv",
    ]


def test_affected_partitions_include_neighbours_that_have_data() -> None:
    with_data = {"2021-09-09", "2021-09-10", "2021-09-12"}
    assert affected_partitions({"2021-09-10"}, with_data) == ["2021-09-09", "2021-09-10"]
    assert affected_partitions({"2021-09-11"}, with_data) == [
        "2021-09-10",
        "2021-09-11",
        "2021-09-12",
    ]
