"""The Python API: `load_logs` and `detect` against the pipeline's own outputs and the oracle, and
rules added as a class or in rules.yaml becoming assets and report sections."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_pipeline import BUILTIN_RULES, SlidingWindowRule, detect, load_logs, load_rules
from alert_pipeline.cli import main
from alert_pipeline.errors import PipelineError
from alert_pipeline.home import Home
from alert_pipeline.ledger import read_ledger
from alert_pipeline.rules import Incident
from alert_pipeline.runner import dagster_instance
from alert_pipeline_tests.custom_rules import CrashesOnOneOs
from alert_pipeline_tests.helpers import epoch, record, write_csv
from alert_pipeline_tests.oracle import oracle_incidents
from alert_pipeline_tests.test_rules import as_oracle, scenarios

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample_logs.csv"
DAY = "2021-09-14"


def run_in_a_new_process(home: Path) -> subprocess.CompletedProcess:
    """`alert-pipeline run`, in its own process: the rules are read once per process."""
    return subprocess.run(
        [sys.executable, "-m", "alert_pipeline.cli", "run", "--home", str(home)],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def reported(home: Path) -> list[dict]:
    return sorted(
        (
            incident
            for path in home.glob("reports/*/alert_report.json")
            for incident in json.loads(path.read_text())["incidents"]
        ),
        key=lambda i: (i["rule"], i["start"]),
    )


def as_reported(incidents: pd.DataFrame) -> list[tuple]:
    """`detect`'s rows in the report's terms."""
    iso = "%Y-%m-%dT%H:%M:%S.%fZ"
    return sorted(
        (
            r.rule,
            r.group,
            r.start.strftime(iso),
            r.end.strftime(iso),
            r.peak_count,
            r.event_count,
            r.incident_id,
        )
        for r in incidents.itertuples()
    )


def report_rows(home: Path) -> list[tuple]:
    return sorted(
        (
            i["rule"],
            next(iter(i["group"].values()), None),
            i["start"],
            i["end"],
            i["peak_count"],
            i["event_count"],
            i["incident_id"],
        )
        for i in reported(home)
    )


@pytest.fixture
def sample_files(request) -> list[Path]:
    if request.param == "bundled":
        return [SAMPLE]
    return sorted(request.getfixturevalue("real_samples").glob("*.csv"))  # skips when absent


@pytest.mark.parametrize("sample_files", ["bundled", "real"], indirect=True)
def test_detect_on_loaded_files_equals_the_pipeline_reports(sample_files, tmp_path) -> None:
    home = tmp_path / "home"
    (home / "incoming").mkdir(parents=True)
    for path in sample_files:
        (home / "incoming" / path.name).write_bytes(path.read_bytes())
    assert main(["run", "--home", str(home)]) == 0

    records = load_logs(sample_files)
    found = detect(records)
    assert len(found) >= 5
    assert as_reported(found) == report_rows(home)
    # the warehouse gives the same records back, in the same types
    stored = load_logs(home)
    assert len(stored) == len(records)
    assert dict(stored.dtypes) == dict(records.dtypes)
    assert str(records["date"].dtype) == "datetime64[us, UTC]"
    assert isinstance(records["bundle_id"].dtype, pd.CategoricalDtype)
    assert as_reported(detect(stored)) == report_rows(home)


SPELLINGS = ["fatal", "Error", " ERROR ", "error"]
OTHERS = ["info", "warning", "Debug", "errors"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_n=40), st.data())
def test_detect_on_a_dataframe_matches_the_oracle(scenario, data) -> None:
    """Severity spellings, noise records, categorical or text groups and row order: the
    DataFrame path finds exactly the oracle's incidents over the fatal records."""
    rule, times, groups = scenario
    rule = SlidingWindowRule("r", rule.threshold, rule.window_seconds, group_by=rule.group_by)
    fatal = data.draw(
        st.lists(st.sampled_from(SPELLINGS), min_size=len(times), max_size=len(times))
    )
    noise = data.draw(st.lists(st.tuples(st.sampled_from(OTHERS), st.sampled_from(times or [0]))))
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime([*times, *(t for _, t in noise)], unit="us", utc=True),
            "severity": [*fatal, *(s for s, _ in noise)],
            "bundle_id": [*(groups or ["a"] * len(times)), *["a"] * len(noise)],
        }
    ).sample(frac=1, random_state=data.draw(st.integers(0, 2**31)))
    if data.draw(st.booleans()):
        frame = frame.astype({"severity": "category", "bundle_id": "category"})

    found = detect(frame, [rule])
    expected = oracle_incidents(times, groups, rule.threshold, rule.window_us)
    got = sorted(
        (
            as_oracle(
                Incident(
                    r.rule,
                    r.group_by,
                    r.group,
                    r.start.value // 1000,
                    r.end.value // 1000,
                    r.peak_count,
                    r.event_count,
                    r.threshold,
                    rule.window_us,
                    r.last_breach.value // 1000,
                )
            )
            for r in found.itertuples()
        ),
        key=lambda i: (i.group or "", i.start_us),
    )
    assert got == expected


def test_detect_names_missing_columns() -> None:
    frame = pd.DataFrame({"date": pd.to_datetime([0], unit="s", utc=True), "severity": ["fatal"]})
    with pytest.raises(PipelineError, match="lack the columns bundle_id"):
        detect(frame)
    assert detect(frame, BUILTIN_RULES[:1]).empty


def test_load_logs_of_a_dirty_file_counts_as_the_pipeline(tmp_path) -> None:
    good = [record(date=epoch(DAY, n)) for n in range(20)]
    bad = [
        record(date="yesterday"),
        record(severity="  "),
        record(bundle_id=""),
        record(date=epoch("1999-01-01", 5)),  # before the first partition day: undated
        record(test_mode="maybe"),
    ]
    path = write_csv(tmp_path / "dirty.csv", good[:10] + bad + good[10:])
    logs = load_logs(path, quarantined=True)

    home = tmp_path / "home"
    (home / "incoming").mkdir(parents=True)
    (home / "incoming" / path.name).write_bytes(path.read_bytes())
    assert main(["run", "--home", str(home)]) == 0
    (entry,) = read_ledger(Home(home)).values()
    stored = sum(day["stored"] for day in entry["days"].values())
    quarantined = sum(day["quarantined"] for day in entry["days"].values())
    assert (len(logs.records), len(logs.quarantined)) == (stored, quarantined) == (20, 5)
    assert set(logs.quarantined["column"]) == {"date", "severity", "bundle_id", "test_mode"}
    assert logs.quarantined["record_number"].tolist() == sorted(range(11, 16))
    assert logs.quarantined["reason"].str.len().min() > 0
    from_home = load_logs(home).sort_values("date", ignore_index=True)
    pd.testing.assert_frame_equal(logs.records.sort_values("date", ignore_index=True), from_home)


def test_load_logs_of_a_rejected_file_says_why(tmp_path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\x00\x01\x02 not a log\n")
    with pytest.raises(PipelineError, match="empty.csv: file rejected: "):
        load_logs(path)
    with pytest.raises(PipelineError, match="no such file or folder"):
        load_logs(tmp_path / "missing.csv")


def _bytes_read() -> int:
    """Bytes this process has read through system calls so far (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_load_logs_of_a_day_reads_only_the_asked_columns(tmp_path) -> None:
    from alert_pipeline.generate import generate_logs

    home = tmp_path / "home"
    generate_logs(home / "incoming", rows=60_000, days=1, seed=3)
    assert main(["run", "--home", str(home)]) == 0
    (day,) = (p.name.removeprefix("day=") for p in Home(home).validated.glob("day=*"))
    on_disk = sum(p.stat().st_size for p in Home(home).day_dir(day).glob("*.parquet"))

    before = _bytes_read()
    everything = load_logs(home, days=day)
    read_all = _bytes_read() - before
    before = _bytes_read()
    two = load_logs(home, days=(day, day), columns=["date", "severity"])
    read_two = _bytes_read() - before

    assert list(two.columns) == ["date", "severity"] and len(two) == len(everything) == 60_000
    assert read_all >= 0.9 * on_disk
    # what the two columns' chunks hold, plus the footers: the other 22 columns stay on disk
    chunks = footers = 0
    for part in Home(home).day_dir(day).glob("*.parquet"):
        metadata = pq.ParquetFile(part).metadata
        footers += metadata.serialized_size + 8
        for group in range(metadata.num_row_groups):
            for column in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(column)
                if chunk.path_in_schema in ("date", "severity"):
                    chunks += chunk.total_compressed_size
    assert chunks < on_disk / 2
    assert read_two <= chunks + 2 * footers + 65_536, (read_two, chunks, footers, on_disk)
    assert load_logs(home, days=["1999-01-01"]).empty
    with pytest.raises(PipelineError, match="unknown columns: nope"):
        load_logs(home, columns=["nope"])


RULES_YAML = """\
# one rule as a class, one as settings only, one built-in overridden
rules:
  - name: android_crashes
    class: alert_pipeline_tests.custom_rules:CrashesOnOneOs
    threshold: 3
    window_seconds: 60
    description: More than 3 fatal errors on Android in under a minute.
  - name: fatal_errors_per_ten_seconds
    threshold: 5
    window_seconds: 10
  - name: fatal_errors_per_minute
    threshold: 20
    window_seconds: 60
"""


def test_rules_from_a_class_and_from_yaml_become_assets_and_report_sections(tmp_path) -> None:
    home = tmp_path / "home"
    (home / "incoming").mkdir(parents=True)
    (home / "rules.yaml").write_text(RULES_YAML)
    android = [record(date=epoch(DAY, 100 + n), os="android", severity="fatal") for n in range(5)]
    ios = [record(date=epoch(DAY, 200 + n / 10), os="ios", severity="fatal") for n in range(8)]
    write_csv(home / "incoming" / "logs.csv", android + ios)

    done = run_in_a_new_process(home)
    assert done.returncode == 0, done.stderr
    assert "incidents android_crashes: 1" in done.stdout
    assert "incidents fatal_errors_per_ten_seconds: 1" in done.stdout

    rules = {rule.name: rule for rule in load_rules(home / "rules.yaml")}
    assert list(rules) == [
        "fatal_errors_per_minute",
        "fatal_errors_per_bundle_per_hour",
        "android_crashes",
        "fatal_errors_per_ten_seconds",
    ]
    assert rules["fatal_errors_per_minute"].threshold == 20
    assert isinstance(rules["android_crashes"], CrashesOnOneOs)
    found = detect(load_logs(home / "incoming" / "logs.csv"), rules.values())
    assert as_reported(found) == report_rows(home)
    assert {i["rule"] for i in reported(home)} == {
        "android_crashes",
        "fatal_errors_per_ten_seconds",
        "fatal_errors_per_bundle_per_hour",  # 13 fatal errors of one app; the minute rule needs 21
    }
    (android_incident,) = [i for i in reported(home) if i["rule"] == "android_crashes"]
    assert android_incident["event_count"] == 5  # only the Android records count
    html = next(home.glob("reports/*/alert_report.html")).read_text()
    assert "android_crashes" in html

    from dagster import AssetKey

    with dagster_instance(Home(home)) as instance:
        for name in ("android_crashes", "fatal_errors_per_ten_seconds", "fatal_errors_per_minute"):
            event = instance.get_latest_materialization_event(AssetKey(name))
            assert event is not None and event.asset_materialization.partition == DAY, name
        minute = instance.get_latest_materialization_event(AssetKey("fatal_errors_per_minute"))
    assert minute.asset_materialization.metadata["threshold"].value == 20  # overridden


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - name: [x\n", r"rules.yaml line 3: not valid YAML"),
        ("- name: x\n", r"line 1: expected `rules:` with a list of rules"),
        ("rules:\n  - just a name\n", r"line 2: a rule is a mapping"),
        (
            "rules:\n  - name: x\n    window_seconds: 5\n    threshold: ten\n",
            r"line 4 \(rule 'x'\): threshold: Input should be a valid integer",
        ),
        (
            "rules:\n  - name: x\n    threshold: 0\n    window_seconds: 5\n",
            r"line 2 \(rule 'x'\): rule x: threshold must be at least 1",
        ),
        (
            "rules:\n  - name: x\n    thresold: 3\n",
            r"line 2 \(rule 'x'\): unknown setting 'thresold'",
        ),
        (
            "rules:\n  - name: x\n    threshold: 3\n    window_seconds: 5\n    group_by: app\n",
            r"line 2 \(rule 'x'\): 'app' is not a column of the log records",
        ),
        (
            "rules:\n  - name: x\n    class: os.path:join\n",
            r"line 2 \(rule 'x'\): class 'os.path:join' is not a SlidingWindowRule",
        ),
        (
            "rules:\n  - name: x\n    class: no_such_module:Rule\n",
            r"line 2 \(rule 'x'\): class 'no_such_module:Rule' cannot be imported",
        ),
        (
            "rules:\n  - {name: x, threshold: 3, window_seconds: 5}\n"
            "  - {name: x, threshold: 4, window_seconds: 5}\n",
            r"line 3: rule 'x' twice",
        ),
        (
            "rules:\n  - {name: bad-name, threshold: 3, window_seconds: 5}\n",
            r"only letters, digits and _",
        ),
    ],
)
def test_bad_rules_files_name_the_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError, match=message):
        load_rules(path)


def test_a_bad_rules_file_stops_the_cli_with_its_line(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "rules.yaml").write_text(
        "rules:\n  - name: x\n    window_seconds: 5\n    threshold: -1\n"
    )
    done = run_in_a_new_process(home)
    assert done.returncode != 0
    assert f"{home / 'rules.yaml'} line 2 (rule 'x'): rule x: threshold" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_notebook_example_runs(tmp_path) -> None:
    """docs/examples/explore_incidents.py, as a user runs it (it runs the demo pipeline itself)."""
    done = subprocess.run(
        [sys.executable, "docs/examples/explore_incidents.py", str(tmp_path / "home")],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "the pipeline's report and detect() agree: 7 incidents" in done.stdout
    assert "threshold 5:" in done.stdout
    plot = tmp_path / "home" / "fatal_per_minute.png"
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_a_process_runs_one_set_of_rules(tmp_path, monkeypatch) -> None:
    """Rules are read once per process: a second home with its own rules.yaml is refused, not
    run with the rules loaded before; ALERT_PIPELINE_RULES must name a file."""
    from alert_pipeline.registry import registered_rules, rules_file, use_home

    registered_rules()  # this process has loaded its rules
    (tmp_path / "rules.yaml").write_text(RULES_YAML)
    with pytest.raises(PipelineError, match="already loaded other rules; one home per process"):
        use_home(tmp_path)
    use_home(tmp_path / "elsewhere")  # a home without a rules file runs the loaded rules

    monkeypatch.setenv("ALERT_PIPELINE_RULES", str(tmp_path / "missing.yaml"))
    with pytest.raises(PipelineError, match="missing.yaml: no such file"):
        rules_file()
    monkeypatch.setenv("ALERT_PIPELINE_RULES", str(tmp_path / "rules.yaml"))
    assert rules_file() == tmp_path / "rules.yaml"
