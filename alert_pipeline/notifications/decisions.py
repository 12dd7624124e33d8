"""What `incident_notifications` does for its days: compare the incidents the rules now see with
what the outbox knows, and record the decisions and the events to send, in one transaction.

Decisions are made whether or not notifications are configured: without notifications.yaml new
incidents are recorded as not paged (so that adding the file pages what is detected from then
on, not the past); with a broken one they are decided as usual and held until it is fixed.
"""

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from alert_pipeline.home import Home
from alert_pipeline.notifications.lifecycle import Change, Known, Seen, reconcile
from alert_pipeline.notifications.outbox import Outbox
from alert_pipeline.registry import RULES
from alert_pipeline.report import incident_document, report_path
from alert_pipeline.rules import MICROS_PER_SECOND, incident_from_record
from alert_pipeline.warehouse import read_incidents


@dataclass
class DayDecisions:
    """What was decided for one day: messages queued by status, incidents not paged by reason."""

    queued: dict[str, int] = field(default_factory=dict)  # firing | updated | … → messages
    not_paged: dict[str, int] = field(default_factory=dict)  # historical | … → new incidents

    def as_metadata(self) -> dict[str, int]:
        return {f"queued_{s}": n for s, n in self.queued.items()} | {
            f"not_paged_{r}": n for r, n in self.not_paged.items()
        }


def _neighbours(days: list[str]) -> set[str]:
    around = set(days)
    for day in days:
        date = dt.date.fromisoformat(day)
        around |= {str(date - dt.timedelta(days=1)), str(date + dt.timedelta(days=1))}
    return around


def seen_incidents(home: Home, days: set[str]) -> list[Seen]:
    """Every rule's incidents of the days, from the rule outputs; open if their last breach is
    less than W before the newest record the rule read."""
    seen = []
    for rule in RULES:
        for day in sorted(days):
            document = read_incidents(home, rule.name, day)
            if document is None:
                continue
            until = document.get("data_until_us")
            for record in document["incidents"]:
                incident = incident_from_record(record)
                is_open = until is None or incident.last_breach_us + incident.window_us > until
                seen.append(Seen(incident, is_open))
    return seen


def event_body(home: Home, known: Known, status: str) -> dict:
    """The message about an incident, as every channel renders it: the incident summary only."""
    document = incident_document(known.incident)
    return document | {
        "incident_id": known.key,  # the key it was first paged under, whatever its start now
        "detected_incident_id": document["incident_id"],
        "status": status,
        "revision": known.revision,
        "open": known.open,
        "partition": known.partition,
        "report": str(report_path(home.reports, known.partition)),
    }


def _digest_body(changes: list[Change], days: list[str]) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for change in changes:
        by_rule = counts.setdefault(change.known.reason, {})
        rule = change.known.incident.rule
        by_rule[rule] = by_rule.get(rule, 0) + 1
    keys = sorted(change.known.key for change in changes)
    return {
        "kind": "digest",
        "key": "digest:" + hashlib.sha256("\0".join(keys).encode()).hexdigest()[:16],
        "partition": min(days),
        "days": [min(days), max(days)],
        "incidents": len(keys),
        "not_paged": counts,
    }


def decide(
    home: Home, outbox: Outbox, days: list[str], quiet: str, max_age_hours: float, now_us: int
) -> dict[str, DayDecisions]:
    """Decide for `days` (their neighbours are read too: an incident can move across midnight)
    and record it; `quiet` says why new incidents are not paged (backfill, unconfigured) or is
    "". Returns what was decided per day."""
    around = _neighbours(days)
    changes = reconcile(
        seen_incidents(home, around),
        outbox.known(around),
        set(days),
        now_us,
        int(max_age_hours * 3600 * MICROS_PER_SECOND),
        quiet,
    )
    events: list[tuple[Known | None, str, dict]] = [
        (c.known, c.status, event_body(home, c.known, c.status)) for c in changes if c.status
    ]
    unpaged = [c for c in changes if c.new and not c.known.paged]
    if unpaged:
        events.append((None, "digest", _digest_body(unpaged, days)))
    outbox.record(changes, events, now_us)
    decided = {day: DayDecisions() for day in days}
    for change in changes:
        day = decided.get(change.known.partition)
        if day is None:
            continue
        if change.status:
            day.queued[change.status] = day.queued.get(change.status, 0) + 1
        elif change in unpaged:
            day.not_paged[change.known.reason] = day.not_paged.get(change.known.reason, 0) + 1
    return decided
