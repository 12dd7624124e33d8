"""The lifecycle of a paged incident, decided by comparing what the rules see now with what was
decided before (pure: no I/O).

An incident keeps the key it was first paged under (its first `incident_id`), also when late
data moves its start and so its id: it is matched by id, else by overlapping the same rule and
group's known incident (incidents of one group never overlap each other). Messages:
- `firing`: the first message of a paged incident, open or already over (`end` says which);
- `resolved`: it was sent open, and the data now shows it ended;
- `updated`: its extent, peak or event count changed (also if it opened again);
- `withdrawn`: a corrected file removed it.
An incident that ended more than `max_age` before it was first seen is historical; one first seen
by a Dagster backfill run, or while no channel is configured, is not paged either: all are
recorded, never paged, later changes included.
"""

import dataclasses
from dataclasses import dataclass

from alert_pipeline.rules import Incident


@dataclass(frozen=True)
class Seen:
    """An incident as the rules see it now; `open`: it may still go on in newer data."""

    incident: Incident
    open: bool


@dataclass(frozen=True)
class Known:
    """An incident as decided before (one row of the outbox): as it was last seen, and the key
    it was first paged under."""

    key: str
    incident: Incident
    open: bool
    state: str  # open | ended | withdrawn
    paged: bool
    reason: str  # why not paged: historical | backfill | unconfigured ("" when paged)
    revision: int  # of the last message sent about it (0: none)

    @property
    def partition(self) -> str:
        return str(self.incident.day)


@dataclass(frozen=True)
class Change:
    """What to record about an incident, and the message to send (None: record only); `new`:
    first seen now."""

    known: Known
    status: str | None
    new: bool = False


def _summary(k: Known) -> tuple:
    i = k.incident
    return (i.incident_id, i.start_us, i.end_us, i.peak_count, i.event_count, k.open)


def _same_group(k: Known, i: Incident) -> bool:
    return (k.incident.rule, k.incident.group_by, k.incident.group) == (i.rule, i.group_by, i.group)


def _overlaps(k: Known, i: Incident) -> bool:
    return k.incident.start_us < i.end_us and i.start_us < k.incident.end_us


def _follow(known: Known, seen: Seen) -> Change | None:
    """The change of a known incident now seen as `seen`, if anything changed."""
    now = dataclasses.replace(known, incident=seen.incident, open=seen.open)
    if known.state != "withdrawn" and _summary(now) == _summary(known):
        return None
    if not known.paged:
        state = "open" if seen.open else "ended"
        return Change(dataclasses.replace(now, state=state), None)
    if known.state == "withdrawn":
        status = "firing"  # back after a correction: page again
    elif known.state == "open" and not seen.open:
        status = "resolved"
    else:
        status = "updated"
    state = "open" if seen.open else "ended"
    return Change(dataclasses.replace(now, state=state, revision=known.revision + 1), status)


def reconcile(
    seen: list[Seen],
    known: list[Known],
    days: set[str],
    now_us: int,
    max_age_us: int,
    quiet: str = "",
) -> list[Change]:
    """The changes that bring `known` in line with `seen`. `seen` holds every incident of `days`
    and of their neighbour days; only incidents of `days` are withdrawn when not seen. `quiet`
    (backfill, unconfigured) says why new incidents are not paged at all."""
    by_id = {k.incident.incident_id: k for k in known}
    claimed: set[str] = set()
    changes = []
    for s in sorted(seen, key=lambda s: (s.incident.start_us, s.incident.rule)):
        i = s.incident
        match = by_id.get(i.incident_id)
        if match is None or match.key in claimed:
            overlapping = [
                k for k in known if k.key not in claimed and _same_group(k, i) and _overlaps(k, i)
            ]
            match = min(overlapping, key=lambda k: k.incident.start_us, default=None)
        if match is not None:
            claimed.add(match.key)
            change = _follow(match, s)
            if change is not None:
                changes.append(change)
            continue
        if str(i.day) not in days:
            continue  # a neighbour day's new incident: its own day decides it
        state = "open" if s.open else "ended"
        if quiet or i.end_us < now_us - max_age_us:
            reason = quiet or "historical"
            changes.append(
                Change(Known(i.incident_id, i, s.open, state, False, reason, 0), None, True)
            )
        else:
            changes.append(
                Change(Known(i.incident_id, i, s.open, state, True, "", 1), "firing", True)
            )
    for k in known:
        if k.key in claimed or k.partition not in days or k.state == "withdrawn":
            continue
        gone = dataclasses.replace(k, state="withdrawn", revision=k.revision + k.paged)
        changes.append(Change(gone, "withdrawn" if k.paged else None))
    return changes
