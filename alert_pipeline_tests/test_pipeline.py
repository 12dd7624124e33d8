"""The Dagster wiring: Definitions load, `ingest_job` writes Parquet and partitioned
materializations write incidents and reports (and no day's data), the blocking check guards the
chain, and a burst across midnight is reported once."""

import json
import logging
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, materialize

from alert_pipeline.assets import alert_report, rule_assets, validated_logs
from alert_pipeline.definitions import defs
from alert_pipeline.home import Home
from alert_pipeline.registry import RULES
from alert_pipeline.resources import AlertHome
from alert_pipeline_tests.helpers import epoch, record, run_ingest_job, write_csv

ALL_ASSETS = [validated_logs, *rule_assets, alert_report]


def run(home: Path, partition: str, instance: DagsterInstance, selection=None):
    """Ingest what landed (as the sensor does), then materialize the day."""
    run_ingest_job(home, instance)
    return materialize(
        ALL_ASSETS,
        selection=selection,
        partition_key=partition,
        instance=instance,
        resources={"alert_home": AlertHome(path=str(home), settle_seconds=0)},
        raise_on_error=False,
    )


def report(home: Path, day: str) -> dict:
    return json.loads((home / "reports" / day / "alert_report.json").read_text())


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def test_definitions_load_every_rule_as_an_asset() -> None:
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    rules = {rule.name for rule in RULES}
    assert keys == {"validated_logs", "incident_notifications", "alert_report", *rules}
    graph = defs.resolve_asset_graph()
    upstream = {k.to_user_string() for k in graph.get(AssetKey("alert_report")).parent_keys}
    assert upstream == {"validated_logs", "incident_notifications", *rules}
    assert {
        k.to_user_string() for k in graph.get(AssetKey("incident_notifications")).parent_keys
    } == rules
    assert {"fatal_errors_per_minute", "fatal_errors_per_bundle_per_hour"} <= keys
    for job in ("ingest_job", "daily_alerts_job"):
        assert defs.resolve_job_def(job).name == job


def test_midnight_burst_is_reported_once_by_the_new_day(tmp_path: Path, instance) -> None:
    # 6 fatal events at 23:59:55 and 5 at 00:00:03: one breach, reported by the new day.
    before = [record(date=epoch("2021-09-10", 86_395 + i * 0.1)) for i in range(6)]
    after = [record(date=epoch("2021-09-11", 3 + i * 0.1)) for i in range(5)]
    quiet = [record(date=epoch("2021-09-10", 3600), severity="Info")]
    write_csv(tmp_path / "incoming" / "day1.csv", before + quiet)
    write_csv(tmp_path / "incoming" / "day2.csv", after, header=False)

    for day in ("2021-09-10", "2021-09-11"):
        result = run(tmp_path, day, instance)
        assert result.success

    assert report(tmp_path, "2021-09-10")["incidents"] == []
    incidents = report(tmp_path, "2021-09-11")["incidents"]
    # Same start for both rules: sorted by rule name after start.
    assert [i["rule"] for i in incidents] == [
        "fatal_errors_per_bundle_per_hour",
        "fatal_errors_per_minute",
    ]
    per_bundle, per_minute = incidents
    assert per_minute["start"] == "2021-09-11T00:00:03.400000Z"  # the 11th event
    assert per_minute["end"] == "2021-09-11T00:00:55.000000Z"  # t[b−k] = 23:59:55 (first event)
    assert per_minute["peak_count"] == 11 and per_minute["event_count"] == 11
    assert per_minute["group"] == {}
    assert per_bundle["group"] == {"bundle_id": "com.thg.battleops.shooting.game"}
    assert report(tmp_path, "2021-09-10")["records"] == {"stored": 7, "quarantined": 0}


def test_materializing_a_day_writes_no_days_data_only_ingest_job_does(tmp_path, instance) -> None:
    # A file with records of two days: materializing the first day must not ingest it (that would
    # write the second day too); the run says the file waits. ingest_job writes both days and
    # records a validated_logs materialization of each.
    days = ("2021-09-10", "2021-09-11")
    write_csv(tmp_path / "incoming" / "two.csv", [record(date=epoch(day, 60)) for day in days])
    resources = {"alert_home": AlertHome(path=str(tmp_path), settle_seconds=0)}

    result = materialize(
        [validated_logs], partition_key=days[0], instance=instance, resources=resources
    )

    assert result.success
    assert list(tmp_path.rglob("*.parquet")) == []
    (shown,) = [m.materialization.metadata for m in result.get_asset_materialization_events()]
    assert shown["landing_files_waiting"].value == 1 and shown["records_read"].value == 0
    warnings = [
        e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING
    ]
    assert any("1 landing file(s) not ingested yet (two.csv)" in w for w in warnings), warnings

    run_ingest_job(tmp_path, instance)
    for day in days:
        (latest,) = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=validated_logs.key, asset_partitions=[day]), limit=1
        ).records
        assert latest.asset_materialization.metadata["records_stored"].value == 1
        assert (
            len(list((tmp_path / "warehouse" / "validated_logs" / f"day={day}").glob("*.parquet")))
            == 1
        )


def test_incident_starting_before_midnight_keeps_its_full_extent(tmp_path: Path, instance) -> None:
    # One event a second from 23:59:49 to 00:00:19: starts on day 1, ends on day 2.
    records = [record(date=epoch("2021-09-10", 86_389 + i)) for i in range(31)]
    write_csv(tmp_path / "incoming" / "burst.csv", records)
    for day in ("2021-09-11", "2021-09-10"):  # the later day first: order must not matter
        assert run(tmp_path, day, instance).success
    (incident,) = [
        i
        for i in report(tmp_path, "2021-09-10")["incidents"]
        if i["rule"] == "fatal_errors_per_minute"
    ]
    assert incident["start"] == "2021-09-10T23:59:59.000000Z"
    assert incident["end"] == "2021-09-11T00:01:09.000000Z"  # t[b−k] + W = 00:00:09 + 60 s
    assert incident["peak_count"] == 31 and incident["event_count"] == 31
    assert report(tmp_path, "2021-09-11")["incidents"] == []


def test_ingest_then_materialize_writes_parquet_checks_and_metadata(
    tmp_path: Path, instance
) -> None:
    records = [record(date=epoch("2021-09-10", 100 + i), bundle_id=f"b{i % 2}") for i in range(12)]
    bad = record(date="not-a-date")
    write_csv(tmp_path / "incoming" / "f.csv", [*records, bad])

    result = run(tmp_path, "2021-09-10", instance)

    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["records_reconcile"].passed
    # 1 of 13 records quarantined is above the default 1 % share: the quality check warns.
    share = checks["quarantine_share"]
    assert not share.passed and share.severity.value == "WARN"
    assert share.metadata["quarantined_share"].value == pytest.approx(1 / 13)
    materializations = {
        m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()
    }
    logs = materializations["validated_logs"].materialization.metadata
    assert logs["records_read"].value == 13
    assert logs["records_stored"].value == 12
    assert logs["records_quarantined"].value == 1
    assert logs["severity_counts"].value == {"Error": 12}
    minute = materializations["fatal_errors_per_minute"].materialization.metadata
    assert minute["incident_count"].value == 1
    assert "2021-09-10T00:01:50.000000Z" in minute["incidents"].value
    shown = materializations["alert_report"].materialization.metadata["report"].value
    assert "data:image/png;base64," in shown

    dataset = ds.dataset(tmp_path / "warehouse" / "validated_logs", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 12
    assert str(table.schema.field("date").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("bundle_id").type).startswith("dictionary")
    quarantine = ds.dataset(tmp_path / "quarantine" / "day=2021-09-10").to_table().to_pylist()
    assert quarantine[0]["record_number"] == 13 and quarantine[0]["column"] == "date"
    assert report(tmp_path, "2021-09-10")["records"] == {"stored": 12, "quarantined": 1}


def test_report_files_shown_in_the_ui_have_absolute_paths(tmp_path, instance, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "home" / "incoming" / "f.csv", [record(date=epoch("2021-09-10", 60))])
    result = run(Path("home"), "2021-09-10", instance)  # a relative home, as users type it
    (shown,) = [
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key == AssetKey("alert_report")
    ]
    for key in ("json_path", "html_path"):
        path = Path(shown[key].value)
        assert path.is_absolute() and path.is_file(), path


def test_rematerializing_is_idempotent(tmp_path: Path, instance) -> None:
    write_csv(
        tmp_path / "incoming" / "f.csv",
        [record(date=epoch("2021-09-10", 10 + i * 0.5)) for i in range(20)],
    )
    assert run(tmp_path, "2021-09-10", instance).success
    first = report(tmp_path, "2021-09-10")
    parquet = sorted((tmp_path / "warehouse").rglob("*.parquet"))
    assert run(tmp_path, "2021-09-10", instance).success
    second = report(tmp_path, "2021-09-10")
    first.pop("generated_at"), second.pop("generated_at")
    assert first == second
    assert sorted((tmp_path / "warehouse").rglob("*.parquet")) == parquet
    assert ds.dataset(parquet).count_rows() == 20


def test_failed_reconciliation_blocks_the_rules_and_report(tmp_path: Path, instance) -> None:
    write_csv(tmp_path / "incoming" / "f.csv", [record(date=epoch("2021-09-10", 5))])
    assert run(tmp_path, "2021-09-10", instance, selection=[validated_logs]).success
    for part in (tmp_path / "warehouse" / "validated_logs").rglob("*.parquet"):
        part.unlink()  # storage no longer matches the ledger

    result = run(tmp_path, "2021-09-10", instance)

    check = {c.check_name: c for c in result.get_asset_check_evaluations()}["records_reconcile"]
    assert not check.passed
    assert "files hold 0 stored" in check.metadata["problems"].value
    done = {m.asset_key for m in result.get_asset_materialization_events()}
    assert AssetKey("alert_report") not in done
    assert not (tmp_path / "reports" / "2021-09-10").exists()


def test_partition_range_run_equals_day_by_day(tmp_path: Path, instance) -> None:
    records = [record(date=epoch("2021-09-10", 86_340 + i * 9)) for i in range(30)]
    for name in ("a", "b"):
        write_csv(tmp_path / name / "incoming" / "f.csv", records)
    for day in ("2021-09-10", "2021-09-11"):
        assert run(tmp_path / "a", day, instance).success
    run_ingest_job(tmp_path / "b", instance)
    ranged = materialize(
        ALL_ASSETS,
        instance=instance,
        resources={"alert_home": AlertHome(path=str(tmp_path / "b"), settle_seconds=0)},
        tags={
            "dagster/asset_partition_range_start": "2021-09-10",
            "dagster/asset_partition_range_end": "2021-09-11",
        },
    )
    assert ranged.success
    for day in ("2021-09-10", "2021-09-11"):
        assert report(tmp_path / "a", day)["incidents"] == report(tmp_path / "b", day)["incidents"]
        # Each partition's latest materialization shows that day's own report, not the range's.
        (latest,) = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("alert_report"), asset_partitions=[day]), limit=1
        ).records
        shown = latest.asset_materialization.metadata["report"].value
        assert f"Alert report {day}" in shown
        count = latest.asset_materialization.metadata["incident_count"].value
        assert count == len(report(tmp_path / "b", day)["incidents"])
    assert Home(tmp_path / "b").reports.is_dir()


def test_rule_threshold_and_window_are_run_config(tmp_path: Path, instance) -> None:
    # 15 fatal events 2 s apart: a breach for the default rule (> 10 within 60 s), none when the
    # threshold is raised to 20 through run config, and one again with a 5 s window at threshold 1.
    write_csv(
        tmp_path / "incoming" / "f.csv",
        [record(date=epoch("2021-09-10", 100 + 2 * i)) for i in range(15)],
    )
    run_ingest_job(tmp_path, instance)

    def minute_incidents(config: dict) -> list[dict]:
        result = materialize(
            ALL_ASSETS,
            partition_key="2021-09-10",
            instance=instance,
            resources={"alert_home": AlertHome(path=str(tmp_path), settle_seconds=0)},
            run_config={"ops": {"fatal_errors_per_minute": {"config": config}}},
        )
        assert result.success
        return [
            i
            for i in report(tmp_path, "2021-09-10")["incidents"]
            if i["rule"] == "fatal_errors_per_minute"
        ]

    (default,) = minute_incidents({})
    assert default["threshold"] == 10 and default["window_seconds"] == 60.0
    assert minute_incidents({"threshold": 20}) == []
    (short,) = minute_incidents({"threshold": 1, "window_seconds": 5.0})
    assert short["threshold"] == 1 and short["window_seconds"] == 5.0
    assert short["start"] == "2021-09-10T00:01:42.000000Z"  # the 2nd event: 2 s < 5 s
