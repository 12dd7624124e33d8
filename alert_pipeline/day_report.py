"""The data of one UTC day's report: the validated `DayReport`, and the incident order, reason
order and time format that every output of it shares. Kept apart from the JSON document and
files (`report.py`) and the pages for people (`report_pages.py`, `report_plot.py`) so that all
of them build on one checked set of data, and `report.py`, which writes every file of a day, can
import the renderers without an import cycle.
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from alert_pipeline.rules import Incident

MINUTES_PER_DAY = 1440
UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _empty_reasons() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, eq=False)
class DayReport:
    """Everything the report of one UTC day shows; validated so that renderers can trust it.

    `eq=False`: the numpy array makes field-wise equality ambiguous; compare documents instead.
    """

    partition: str
    stored: int
    quarantined: int
    incidents: tuple[Incident, ...]
    fatal_per_minute: np.ndarray
    quarantine_reasons: Mapping[str, int] = field(default_factory=_empty_reasons)
    built_from: str = ""  # digest of the inputs (see freshness.py)
    # Who was paged about the day's incidents, and dead letters (notifications/outbox.py: day)
    notifications: Mapping[str, object] = field(default_factory=_empty_reasons)

    def __post_init__(self) -> None:
        day = parse_partition(self.partition)
        for name in ("stored", "quarantined"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        incidents = tuple(self.incidents)
        for incident in incidents:
            if incident.day != day:
                # An incident belongs to the day of its start and is reported once.
                raise ValueError(
                    f"incident {incident.incident_id} starts on {incident.day}, not {day}"
                )
        object.__setattr__(self, "incidents", incidents)
        counts = np.asarray(self.fatal_per_minute)
        if counts.shape != (MINUTES_PER_DAY,) or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(
                f"fatal_per_minute must be {MINUTES_PER_DAY} integers, "
                f"got shape {counts.shape} of {counts.dtype}"
            )
        if (counts < 0).any():
            raise ValueError("fatal_per_minute must not be negative")
        counts = counts.astype(np.int64, copy=True)
        counts.flags.writeable = False  # frozen means frozen: no one mutates the shown data
        object.__setattr__(self, "fatal_per_minute", counts)
        reasons = {str(k): int(v) for k, v in dict(self.quarantine_reasons).items()}
        object.__setattr__(self, "quarantine_reasons", MappingProxyType(reasons))
        object.__setattr__(self, "notifications", MappingProxyType(dict(self.notifications)))


def parse_partition(partition: str) -> dt.date:
    """The day of a "YYYY-MM-DD" partition key; strict, because it also names a folder."""
    try:
        day = dt.date.fromisoformat(partition)
    except (TypeError, ValueError):
        day = None
    if day is None or day.isoformat() != partition:
        raise ValueError(f"partition must be a YYYY-MM-DD date, got {partition!r}")
    return day


def iso_utc(time_us: int) -> str:
    """Exact ISO 8601 UTC time from integer µs (no float rounding), always 6 digits and "Z"."""
    t = UNIX_EPOCH + dt.timedelta(microseconds=int(time_us))
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
        f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}Z"
    )


def _group_text(incident: Incident) -> str:
    return incident.group if incident.group is not None else ""


def sorted_incidents(incidents: Iterable[Incident]) -> list[Incident]:
    """Incidents by start, then rule, then group ("" for none): the order of every output.

    Further fields only break exact ties, so the order never depends on the input order.
    """
    return sorted(
        incidents,
        key=lambda i: (
            i.start_us,
            i.rule,
            _group_text(i),
            i.group is not None,
            i.group_by or "",
            i.end_us,
            i.last_breach_us,
            i.peak_count,
            i.event_count,
            i.threshold,
            i.window_us,
        ),
    )


def sorted_reasons(report: DayReport) -> list[tuple[str, int]]:
    """Most frequent reason first, then by name, so every output lists them the same way."""
    return sorted(report.quarantine_reasons.items(), key=lambda item: (-item[1], item[0]))
