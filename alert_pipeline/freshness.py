"""Which days are stale: each day's outputs record the input state they were built from.

A rule's incidents of a day record the rule's settings and the state of every day it read (2·W
before the day, and after it until its incidents ended); a report records the state of its day and
of the rule outputs it gathered. A day's state is a digest of the file versions (content hash and
counts) that contributed records to it, read from the ledger. An output whose recorded state
differs from the current one is stale, whatever made it so: a late file, a corrected file, a run
killed between ingestion and materialization, a rule added or changed. `alert-pipeline run`, the
landing-folder sensor and the daily schedule all materialize the stale days: they compare desired
and actual state on every pass instead of reacting to what one process just did.

Writers read the ledger before the data, so a change racing with a run can only make its outputs
look older than they are (and be rebuilt), never newer.
"""

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable

from alert_pipeline.home import UNDATED, Home
from alert_pipeline.notifications.outbox import day_summaries
from alert_pipeline.objects import synced
from alert_pipeline.report import read_report_document
from alert_pipeline.rules import DayDetection, SlidingWindowRule
from alert_pipeline.warehouse import read_incidents

NO_DATA = ""  # the state of a day no file contributed to


def digest(value: object) -> str:
    """A short, stable digest of a JSON-able value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def day_states(ledger: dict[str, dict]) -> dict[str, str]:
    """The state of every day with data: what each file version contributed to it."""
    contributions: dict[str, list] = {}
    for entry in ledger.values():
        for day, counts in entry["days"].items():
            if day != UNDATED:
                contributions.setdefault(day, []).append(
                    [entry.get("sha256"), counts["read"], counts["stored"], counts["quarantined"]]
                )
    return {day: digest(sorted(parts)) for day, parts in contributions.items()}


def rule_settings(rule: SlidingWindowRule) -> dict:
    """What a rule's output depends on besides the data: a custom rule's class and settings too."""
    settings = {
        "threshold": rule.threshold,
        "window_us": rule.window_us,
        "group_by": rule.group_by,
        "severities": sorted(rule.severities),
    }
    if type(rule) is not SlidingWindowRule:
        base = {f.name for f in dataclasses.fields(SlidingWindowRule)}
        settings["class"] = f"{type(rule).__module__}:{type(rule).__qualname__}"
        settings |= {
            f.name: str(getattr(rule, f.name))
            for f in dataclasses.fields(rule)
            if f.name not in base
        }
    return settings


def _days(first: dt.date, last: dt.date) -> list[str]:
    return [str(first + dt.timedelta(days=n)) for n in range((last - first).days + 1)]


def rule_built_from(
    rule: SlidingWindowRule, detection: DayDetection, states: dict[str, str]
) -> dict:
    """What a rule's incidents of a day were computed from."""
    return {
        "settings": rule_settings(rule),
        "days": {day: states.get(day, NO_DATA) for day in _days(detection.first, detection.last)},
        "complete": detection.complete,
    }


def rule_is_current(
    built_from: dict | None, rule: SlidingWindowRule, states: dict[str, str]
) -> bool:
    """Whether incidents built from `built_from` are what `rule` gives on the current data."""
    if not built_from or built_from.get("settings") != rule_settings(rule):
        return False
    days = built_from["days"]
    if any(states.get(day, NO_DATA) != state for day, state in days.items()):
        return False
    # An incident still going on when the data ran out may go on in days that arrived since.
    return built_from["complete"] or not any(day > max(days) for day in states)


def report_built_from(
    day: str, states: dict[str, str], rule_inputs: dict[str, dict | None], notifications: dict
) -> str:
    """What a day's report was built from: its day's data, the rule outputs it gathered, and who
    was paged about its incidents (a dead letter found later makes the report stale)."""
    return digest([states.get(day, NO_DATA), sorted(rule_inputs.items()), notifications])


def rule_documents(
    home: Home, rules: Iterable[SlidingWindowRule], day: str
) -> dict[str, dict | None]:
    """Every rule's stored incidents document of `day` (None where there is none)."""
    return {rule.name: read_incidents(home, rule.name, day) for rule in rules}


def inputs_of(documents: dict[str, dict | None]) -> dict[str, dict | None]:
    """What each rule document was built from (None: missing, or built from unknown inputs)."""
    return {name: document and document["built_from"] for name, document in documents.items()}


def _is_day(text: str) -> bool:
    try:
        return dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _output_days(home: Home) -> set[str]:
    days = {path.name for path in synced(home.reports).glob("*") if path.is_dir()}
    days |= {path.stem.removeprefix("day=") for path in synced(home.incidents).glob("*/day=*.json")}
    return {day for day in days if _is_day(day)}


def stale_days(
    home: Home, rules: Iterable[SlidingWindowRule], ledger: dict[str, dict]
) -> dict[str, str]:
    """Days with data or outputs whose rule incidents or report are not built from the current
    state of `ledger` (missing, older, or built with other rule settings), in order, each with a
    digest of what its report should be built from (given its rule outputs as stored) and what
    it records now: why it is stale, part of the run key the sensor asks for it under."""
    rules = list(rules)
    states = day_states(ledger)
    days = sorted(set(states) | _output_days(home))
    notifications = day_summaries(home, days)
    stale = {}
    for day in days:
        inputs = inputs_of(rule_documents(home, rules, day))
        report = read_report_document(home.reports, day)
        built_from = report_built_from(day, states, inputs, notifications.get(day, {}))
        current = all(rule_is_current(inputs[rule.name], rule, states) for rule in rules) and (
            report is not None and report.get("built_from") == built_from
        )
        if not current:
            stale[day] = digest([built_from, report and report.get("built_from")])
    return stale
