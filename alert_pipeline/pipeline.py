"""The pipeline's steps without Dagster: what each asset does to the home folder for one day.

The assets, `alert-pipeline bench` and the tests call these, so they all run the same code.
"""

import dataclasses
import datetime as dt

from alert_pipeline.freshness import (
    day_states,
    inputs_of,
    report_built_from,
    rule_built_from,
    rule_documents,
)
from alert_pipeline.report import DayReport, plot_fatal_per_minute, write_report
from alert_pipeline.rules import (
    DEFAULT_SEVERITIES,
    RULES,
    DayDetection,
    Incident,
    SlidingWindowRule,
    detect_for_day,
)
from alert_pipeline.warehouse import (
    Home,
    day_counts,
    fatal_per_minute,
    quarantine_reasons,
    read_events,
    read_ledger,
    write_incidents,
)

REPORT_SEVERITIES = frozenset().union(*(rule.severities for rule in RULES)) or DEFAULT_SEVERITIES


def incident_record(incident: Incident) -> dict:
    return dataclasses.asdict(incident) | {"incident_id": incident.incident_id}


def incident_from_record(record: dict) -> Incident:
    fields = {f.name for f in dataclasses.fields(Incident)}
    return Incident(**{k: v for k, v in record.items() if k in fields})


def detect_day(home: Home, rule: SlidingWindowRule, day: str) -> tuple[DayDetection, dict]:
    """The rule's incidents starting on `day`, reading the neighbouring days it needs, and what
    they were built from (the ledger is read before the data: see freshness.py)."""
    states = day_states(read_ledger(home))
    last_data_day = dt.date.fromisoformat(max(states)) if states else dt.date.min

    def load(first: dt.date, last: dt.date):
        days = [str(first + dt.timedelta(days=n)) for n in range((last - first).days + 1)]
        return read_events(home, rule, [d for d in days if d in states])

    detection = detect_for_day(rule, dt.date.fromisoformat(day), load, last_data_day)
    return detection, rule_built_from(rule, detection, states)


def detect_and_store(home: Home, rule: SlidingWindowRule, day: str) -> list[Incident]:
    """What a rule asset does for one day: detect, and replace the day's incidents file."""
    detection, built_from = detect_day(home, rule, day)
    incidents = [incident_record(i) for i in detection.incidents]
    write_incidents(home, rule.name, day, {"built_from": built_from, "incidents": incidents})
    return detection.incidents


def report_day(home: Home, day: str) -> tuple[DayReport, bytes]:
    """What the report asset does for one day: gather every rule's incidents and the counts,
    write the JSON, Markdown and HTML; returns the report and its plot (PNG)."""
    states = day_states(read_ledger(home))
    documents = rule_documents(home, RULES, day)
    incidents = [
        incident_from_record(record)
        for document in documents.values()
        for record in (document["incidents"] if document else [])
    ]
    counts = day_counts(home, day)
    report = DayReport(
        partition=day,
        stored=counts.stored,
        quarantined=counts.quarantined,
        incidents=tuple(incidents),
        fatal_per_minute=fatal_per_minute(home, day, REPORT_SEVERITIES),
        quarantine_reasons=quarantine_reasons(home, day),
        built_from=report_built_from(day, states, inputs_of(documents)),
    )
    plot = plot_fatal_per_minute(report)
    write_report(report, home.reports, plot_png=plot)
    return report, plot
