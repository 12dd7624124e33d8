"""Stale days: each day's rule outputs and report record what they were built from, and a day whose
record differs from the warehouse's current state is stale — exactly the days the midnight spec
says a change can affect, plus any day whose incident was still open when its data ran out."""

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from alert_pipeline.freshness import stale_days
from alert_pipeline.home import Home
from alert_pipeline.ingestion import ingest_pending
from alert_pipeline.ledger import read_ledger
from alert_pipeline.pipeline import detect_and_store, report_day
from alert_pipeline.registry import RULES
from alert_pipeline.resources import AlertHome
from alert_pipeline_tests.helpers import epoch, record, write_csv

D = [str(dt.date(2021, 9, 10) + dt.timedelta(days=n)) for n in range(5)]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path).create()


def land(home: Home, name: str, records: list[list[str]]) -> None:
    write_csv(home.incoming / name, records)
    ingest_pending(home, AlertHome(path=str(home.root)).time_range())


def stale(home: Home, rules=RULES) -> list[str]:
    return list(stale_days(home, rules, read_ledger(home)))


def materialize_stale(home: Home) -> list[str]:
    """What a run does for the stale days: every rule, then the report, per day."""
    days = stale(home)
    for day in days:
        for rule in RULES:
            detect_and_store(home, rule, day)
        report_day(home, day)
    return days


def quiet_day(day: str) -> list[list[str]]:
    return [record(date=epoch(day, 3600), severity="Info")]


def test_a_late_file_makes_its_day_and_the_neighbours_reading_it_stale(home) -> None:
    land(home, "days.csv", [r for day in (D[0], D[1], D[3], D[4]) for r in quiet_day(day)])
    assert materialize_stale(home) == [D[0], D[1], D[3], D[4]]
    assert stale(home) == []

    land(home, "late.csv", quiet_day(D[2]))

    # D[1] reads D[2] ahead, D[3] reads it behind (2·W ≤ one day); D[0] and D[4] do not
    assert stale(home) == [D[1], D[2], D[3]]
    materialize_stale(home)
    assert stale(home) == []


def test_changed_rule_settings_an_added_rule_or_an_old_file_make_days_stale(home) -> None:
    land(home, "days.csv", quiet_day(D[0]) + quiet_day(D[1]))
    materialize_stale(home)
    stricter = [dataclasses.replace(RULES[0], threshold=5), *RULES[1:]]
    assert stale(home, stricter) == [D[0], D[1]]
    added = [*RULES, dataclasses.replace(RULES[0], name="fatal_errors_per_5_minutes")]
    assert stale(home, added) == [D[0], D[1]]
    old = home.incidents / RULES[0].name / f"day={D[1]}.json"
    old.write_text(json.dumps(json.loads(old.read_text())["incidents"]))  # before inputs were kept
    assert stale(home) == [D[1]]


def test_a_lost_report_or_incidents_file_is_stale(home) -> None:
    land(home, "days.csv", quiet_day(D[0]) + quiet_day(D[1]))
    materialize_stale(home)
    (home.reports / D[0] / "alert_report.json").unlink()
    (home.incidents / RULES[1].name / f"day={D[1]}.json").unlink()
    assert stale(home) == [D[0], D[1]]


def test_an_incident_open_when_the_data_ran_out_is_finished_by_a_later_day(home) -> None:
    """One fatal event every 5 minutes for one bundle, from D0 22:00 on: the hourly rule's
    incident starts on D0 and is still open when the data ends with D1. D2 is not a neighbour
    of D0, but its data extends D0's incident: D0 is stale."""

    def burst(day: str, start: float, end: float) -> list[list[str]]:
        return [
            record(date=epoch(day, t), severity="Fatal") for t in range(int(start), int(end), 300)
        ]

    land(home, "d0-d1.csv", burst(D[0], 22 * 3600, 86_400) + burst(D[1], 0, 86_400))
    materialize_stale(home)
    before = json.loads((home.reports / D[0] / "alert_report.json").read_text())
    (hourly,) = [i for i in before["incidents"] if i["rule"] == "fatal_errors_per_bundle_per_hour"]

    land(home, "d2.csv", burst(D[2], 0, 2 * 3600))

    assert stale(home) == [D[0], D[1], D[2]]
    materialize_stale(home)
    after = json.loads((home.reports / D[0] / "alert_report.json").read_text())
    (longer,) = [i for i in after["incidents"] if i["rule"] == "fatal_errors_per_bundle_per_hour"]
    assert longer["start"] == hourly["start"] and longer["end"] > hourly["end"]
    assert longer["end"].startswith(D[2])
