"""Shared test helpers: log records as CSV text, files on disk, and the one-shot reference
computation of incidents that split-and-shuffle tests compare against."""

import csv
import datetime as dt
import gzip
import io
import json
import os
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance

from alert_pipeline.day_report import iso_utc
from alert_pipeline.home import Home
from alert_pipeline.jobs import ingest_job
from alert_pipeline.registry import RULES
from alert_pipeline.resources import AlertHome
from alert_pipeline.rules import Events
from alert_pipeline.schema import COLUMNS


def record(**overrides: str) -> list[str]:
    """One record's 24 fields as text in file order (realistic values, none equal to a column
    name), with some fields replaced."""
    fields = {
        "error_code": "0",
        "error_message": "could not receive ip address from ipfy",
        "severity": "Error",
        "log_location": "/BuildNotice/0",
        "mode": "MobileSDK",
        "model": "realme RMX2103",
        "graphics": "OpenGLES2",
        "session_id": "1.0",
        "sdkv": "1.10.2",
        "test_mode": "False",
        "flow_id": "LowRevenueCountryBlock",
        "flow_type": "Programmatic",
        "sdk_date": "09/12/2021 10:31:17",
        "publisher_id": "611bdadcd4e35d332f3d5e66",
        "game_id": "611be843d5491c7d0a6ab0ce",
        "bundle_id": "com.thg.battleops.shooting.game",
        "appv": "1.0",
        "language": "iv",
        "os": "Android OS 11 / API-30 (RKQ1.201217.002/1624241518687)",
        "adv_id": "d6742b97-5638-4c97-8d59-5b538a4ddb02",
        "gdpr": "True",
        "ccpa": "False",
        "country_code": "KZ",
        "date": "1631442679.384516",
    }
    unknown = set(overrides) - set(fields)
    assert not unknown, f"not columns: {unknown}"
    fields.update(overrides)
    return [fields[name] for name in COLUMNS]


def csv_text(records: list[list[str]], header: list[str] | None = None, newline: str = "\n") -> str:
    """CSV text with RFC 4180 quoting (Python's csv module) for the given records."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    if header is not None:
        writer.writerow(header)
    writer.writerows(records)
    return buffer.getvalue()


def epoch(day: str, seconds: float) -> str:
    """Epoch seconds text, 6 decimals, for `seconds` after midnight UTC of `day`."""
    midnight = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()
    return f"{midnight + seconds:.6f}"


def write_csv(path: Path, records: list[list[str]], header: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(records, list(COLUMNS) if header else None))
    return path


def read_records(path: Path) -> list[list[str]]:
    """Records of a generated file, parsed independently of the loader (Python's csv module)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        records = [r for r in csv.reader(handle) if r]
    return records[1:] if records and records[0][0] in ("error_code", "0") else records


def one_shot(records: list[list[str]]) -> set[tuple]:
    """Incidents over all records at once, with exact times from the decimal text."""
    position = {name: i for i, name in enumerate(COLUMNS)}
    found = set()
    for rule in RULES:
        fatal = [r for r in records if r[position["severity"]].strip().lower() in rule.severities]
        times = np.array(
            [int(Decimal(r[position["date"]]) * 1_000_000) for r in fatal], dtype=np.int64
        )
        groups = (
            np.array([r[position[rule.group_by]] for r in fatal], dtype=object)
            if rule.group_by
            else None
        )
        for i in rule.detect(Events(times, groups)):
            found.add(
                (
                    i.rule,
                    i.group,
                    iso_utc(i.start_us),
                    iso_utc(i.end_us),
                    i.peak_count,
                    i.event_count,
                )
            )
    return found


def write_split(records: list[list[str]], folder: Path, rng: random.Random) -> list[Path]:
    """Cut the records at random points into files with random header variants and compression."""
    cuts = sorted(rng.sample(range(1, len(records)), 7))
    paths = []
    for n, (start, end) in enumerate(zip([0, *cuts], [*cuts, len(records)], strict=True)):
        variant = rng.choice(["names", "shuffled", "positional", "none"])
        order = list(COLUMNS)
        if variant == "shuffled":
            rng.shuffle(order)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        if variant in ("names", "shuffled"):
            writer.writerow(order)
        elif variant == "positional":
            writer.writerow(range(len(COLUMNS)))
        index = [COLUMNS.index(name) for name in order]
        writer.writerows([r[i] for i in index] for r in records[start:end])
        suffix = ".csv.gz" if rng.random() < 0.3 else ".csv"
        path = folder / f"part-{n:02d}{suffix}"
        data = text.getvalue().encode()
        path.write_bytes(gzip.compress(data, mtime=0) if suffix.endswith(".gz") else data)
        paths.append(path)
    return paths


def reports(folder: Path) -> dict[str, dict]:
    """The records and incidents of each day's report JSON in a reports folder, by day."""
    return {
        path.parent.name: {k: json.loads(path.read_text())[k] for k in ("records", "incidents")}
        for path in sorted(folder.glob("*/alert_report.json"))
    }


def incidents(home: Home) -> dict[str, list]:
    """Each rule's stored incidents of each day, by path under warehouse/incidents."""
    return {
        str(path.relative_to(home.incidents)): json.loads(path.read_text())["incidents"]
        for path in sorted(home.incidents.rglob("*.json"))
    }


def run_ingest_job(home: Path, instance: DagsterInstance) -> None:
    """Ingest every landing file of `home` as the sensor does: an `ingest_job` run."""
    resources = {"alert_home": AlertHome(path=str(home), settle_seconds=0)}
    assert ingest_job.execute_in_process(instance=instance, resources=resources).success


def reported_incidents(home: Path) -> list[tuple]:
    """Every incident of every daily report under `home`, in the shape `one_shot` returns."""
    return [
        (
            i["rule"],
            i["group"].get("bundle_id"),
            i["start"],
            i["end"],
            i["peak_count"],
            i["event_count"],
        )
        for path in sorted(home.glob("reports/*/alert_report.json"))
        for i in json.loads(path.read_text())["incidents"]
    ]


IN_CI = bool(os.environ.get("CI"))


def need(condition: object, reason: str) -> None:
    """Skip with `reason` when `condition` is false, but fail in CI, which installs everything
    (.ci/run)."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (CI must provide it: see .ci/run)")
        pytest.skip(reason)
