"""The pipeline's steps without Dagster: what each asset does to the home folder for its days.

The assets, `alert-pipeline bench` and the tests call these, so they all run the same code.
"""

import datetime as dt
import time

from alert_pipeline.day_report import DayReport
from alert_pipeline.errors import PipelineError
from alert_pipeline.freshness import (
    day_states,
    inputs_of,
    report_built_from,
    rule_built_from,
    rule_documents,
)
from alert_pipeline.home import Home
from alert_pipeline.ledger import day_counts, read_ledger
from alert_pipeline.notifications.config import config_path, load_notifications, max_age_hours
from alert_pipeline.notifications.decisions import DayDecisions, decide
from alert_pipeline.notifications.delivery import Delivery, deliver
from alert_pipeline.notifications.outbox import day_summaries, open_outbox
from alert_pipeline.registry import RULES
from alert_pipeline.report import write_report
from alert_pipeline.report_plot import plot_fatal_per_minute
from alert_pipeline.rules import (
    DEFAULT_SEVERITIES,
    DayDetection,
    Incident,
    SlidingWindowRule,
    detect_for_day,
    incident_from_record,
    incident_record,
)
from alert_pipeline.warehouse import (
    fatal_per_minute,
    quarantine_reasons,
    read_events,
    write_incidents,
)

REPORT_SEVERITIES = frozenset().union(*(rule.severities for rule in RULES)) or DEFAULT_SEVERITIES
RULE_NAMES = {rule.name for rule in RULES}
ASSET_DELIVERY_SECONDS = 15.0  # the delivery sensor sends what is left


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
    document = {
        "built_from": built_from,
        "data_until_us": detection.data_until_us,  # the data's edge: later incidents are open
        "incidents": [incident_record(i) for i in detection.incidents],
    }
    write_incidents(home, rule.name, day, document)
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
    notifications = day_summaries(home, [day]).get(day, {})
    counts = day_counts(home, day)
    report = DayReport(
        partition=day,
        stored=counts.stored,
        quarantined=counts.quarantined,
        incidents=tuple(incidents),
        fatal_per_minute=fatal_per_minute(home, day, REPORT_SEVERITIES),
        quarantine_reasons=quarantine_reasons(home, day),
        built_from=report_built_from(day, states, inputs_of(documents), notifications),
        notifications=notifications,
    )
    plot = plot_fatal_per_minute(report)
    write_report(report, home.reports, plot_png=plot)
    return report, plot


def notify_days(
    home: Home, days: list[str], backfill: bool
) -> tuple[dict[str, DayDecisions], Delivery | None, str]:
    """What the notifications asset does: decide who is paged about the days' incidents, then
    deliver for a few seconds. A configuration error (returned, "" when none) holds the
    delivery, not the decisions: nothing is lost while it is being fixed."""
    try:
        config, problem = load_notifications(home, RULE_NAMES), ""
    except PipelineError as error:
        config, problem = None, str(error)
    quiet = "backfill" if backfill else "" if config_path(home).exists() else "unconfigured"
    with open_outbox(home) as outbox:
        decided = decide(home, outbox, days, quiet, max_age_hours(home), time.time_ns() // 1000)
    delivery = deliver(home, config, ASSET_DELIVERY_SECONDS) if config else None
    return decided, delivery, problem
