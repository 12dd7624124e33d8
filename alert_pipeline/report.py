"""The daily alert report's machine-readable JSON document, and the report files of a day:
where they are, how the JSON is read back, and how all of them (JSON, Markdown, HTML) are
written together, from a `DayReport` (no Dagster here), so the asset only gathers the data; the
pages for people are rendered in `report_pages.py`.
"""

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path

from alert_pipeline.atomic import write_atomic
from alert_pipeline.day_report import (
    UNIX_EPOCH,
    DayReport,
    iso_utc,
    sorted_incidents,
    sorted_reasons,
)
from alert_pipeline.objects import synced_file
from alert_pipeline.report_pages import render_html, render_markdown
from alert_pipeline.report_plot import plot_fatal_per_minute
from alert_pipeline.rules import Incident

REPORT_NAME = "alert_report"


def _datetime_us(moment: dt.datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive datetime is usually local time in disguise; refuse to guess.
        raise ValueError("generated_at must be timezone-aware")
    return (moment - UNIX_EPOCH) // dt.timedelta(microseconds=1)


def _group_document(incident: Incident) -> dict[str, str | None]:
    """{} for all traffic; otherwise {group_by: value} (value None if the group was null)."""
    return {} if incident.group_by is None else {incident.group_by: incident.group}


def incident_document(incident: Incident) -> dict[str, object]:
    """An incident as the report's JSON (and the notifications) show it."""
    return {
        "incident_id": incident.incident_id,
        "rule": incident.rule,
        "group": _group_document(incident),
        "start": iso_utc(incident.start_us),
        "end": iso_utc(incident.end_us),
        "peak_count": int(incident.peak_count),
        "event_count": int(incident.event_count),
        "threshold": int(incident.threshold),
        "window_seconds": incident.window_us / 1_000_000,
    }


def report_document(report: DayReport, generated_at: dt.datetime | None = None) -> dict:
    """The machine-readable report; key order is fixed so that the JSON text is deterministic."""
    moment = generated_at if generated_at is not None else dt.datetime.now(dt.UTC)
    return {
        "partition": report.partition,
        "records": {"stored": report.stored, "quarantined": report.quarantined},
        "incidents": [incident_document(i) for i in sorted_incidents(report.incidents)],
        "quarantine_reasons": dict(sorted_reasons(report)),
        "notifications": dict(report.notifications),
        "generated_at": iso_utc(_datetime_us(moment)),
        "built_from": report.built_from,
    }


def report_path(reports_dir: Path, day: str) -> Path:
    return Path(reports_dir) / day / f"{REPORT_NAME}.json"


def read_report_document(reports_dir: Path, day: str) -> dict | None:
    """The JSON report of a day, or None when there is none (yet)."""
    path = synced_file(report_path(reports_dir, day))
    return json.loads(path.read_text()) if path.exists() else None


def report_json(document: Mapping) -> str:
    """The JSON text written to disk: insertion order kept, indent 2, UTF-8, trailing newline."""
    return json.dumps(document, sort_keys=False, indent=2, ensure_ascii=False) + "\n"


def write_report(
    report: DayReport,
    reports_dir: Path,
    generated_at: dt.datetime | None = None,
    plot_png: bytes | None = None,
) -> dict[str, Path]:
    """Write reports_dir/YYYY-MM-DD/alert_report.{md,html,json}; same bytes on re-runs.

    `plot_png` saves drawing the plot again when the caller has it. Only the JSON's
    "generated_at" changes between runs. The JSON is written last, so its
    presence means the Markdown and HTML of the same run are in place too.
    """
    day_dir = Path(reports_dir) / report.partition  # partition is validated: no path tricks
    day_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: day_dir / f"{REPORT_NAME}.{ext}" for ext in ("md", "html", "json")}
    write_atomic(paths["md"], render_markdown(report))
    write_atomic(paths["html"], render_html(report, plot_png or plot_fatal_per_minute(report)))
    write_atomic(paths["json"], report_json(report_document(report, generated_at)))
    return {"json": paths["json"], "md": paths["md"], "html": paths["html"]}
