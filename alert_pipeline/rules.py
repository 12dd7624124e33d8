"""Alert rules: exact sliding-window burst detection, and the registry of rules that become assets.

Semantics (docs: alert-semantics): within a group, events sorted by time t[0] ≤ t[1] ≤ …; a breach
at event i means i ≥ k and t[i] − t[i−k] < W; breach events closer than W form one incident. Times
are integer microseconds so that "exactly W apart" is decided exactly.
"""

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MICROS_PER_SECOND = 1_000_000
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND
DEFAULT_SEVERITIES: frozenset[str] = frozenset({"error", "fatal"})


@dataclass(frozen=True)
class Incident:
    """One burst of one group: the state of an alert, not one row per breaching event."""

    rule: str
    group_by: str | None
    group: str | None
    start_us: int
    end_us: int
    peak_count: int
    event_count: int
    threshold: int
    window_us: int
    last_breach_us: int

    @property
    def incident_id(self) -> str:
        """Stable across re-runs and backfills, so a notifier can de-duplicate."""
        key = json.dumps([self.rule, self.group, self.start_us])  # unambiguous, ASCII-only
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def day(self) -> dt.date:
        """An incident belongs to the UTC day of its start."""
        return day_of_us(self.start_us)


def incident_record(incident: Incident) -> dict:
    """An incident as stored (JSON), with its id."""
    return dataclasses.asdict(incident) | {"incident_id": incident.incident_id}


def incident_from_record(record: dict) -> Incident:
    fields = {f.name for f in dataclasses.fields(Incident)}
    return Incident(**{k: v for k, v in record.items() if k in fields})


@dataclass(frozen=True)
class Events:
    """Fatal events of one rule: times (µs since epoch, UTC) and, for grouped rules, group
    labels — or integer codes into `labels`, as storage hands them over dictionary-encoded.
    `data_until_us`: the newest record of any severity where they were read (None: unknown), the
    edge of the data: an incident whose last breach is less than W before it may still go on."""

    times_us: np.ndarray
    groups: np.ndarray | None = None
    labels: list | None = None
    data_until_us: int | None = None

    def __post_init__(self) -> None:
        if self.groups is not None and len(self.groups) != len(self.times_us):
            raise ValueError("times and groups must have the same length")


def severity_mask(severity: pa.Array | pa.ChunkedArray, severities: Iterable[str]) -> pa.Array:
    """Case-insensitive, trimmed severity membership; computed once per dictionary value (storage
    hands `severity` over dictionary-encoded), not per row."""
    wanted = pa.array(sorted(severities), pa.string())
    if isinstance(severity, pa.ChunkedArray):
        severity = severity.combine_chunks()
    if pa.types.is_dictionary(severity.type):
        normal = pc.utf8_lower(pc.utf8_trim_whitespace(severity.dictionary.cast(pa.string())))
        member = pc.fill_null(pc.is_in(normal, wanted), False)
        return pc.fill_null(pc.take(member, severity.indices), False)
    text = severity.cast(pa.string())
    return pc.fill_null(pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(text)), wanted), False)


@dataclass(frozen=True)
class SlidingWindowRule:
    """More than `threshold` events within less than `window_seconds`, per `group_by` value.

    The base class of every rule. Which records are events is `select` (by default: a severity
    in `severities`); a custom rule subclasses this, overrides `select` and lists the extra
    columns it reads in `reads`. Counting stays exact and shared (the Strategy pattern: the rule
    picks the events, the engine finds the incidents).
    """

    name: str
    threshold: int
    window_seconds: float
    group_by: str | None = None
    severities: frozenset[str] = field(default=DEFAULT_SEVERITIES)
    description: str = ""

    reads: ClassVar[tuple[str, ...]] = ()  # columns `select` needs besides date and severity

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ValueError(f"rule {self.name!r}: the name may hold only letters, digits and _")
        if self.threshold < 1:
            raise ValueError(f"rule {self.name}: threshold must be at least 1")
        if self.window_seconds <= 0:
            raise ValueError(f"rule {self.name}: window_seconds must be positive")
        object.__setattr__(
            self, "severities", frozenset(s.strip().lower() for s in self.severities)
        )

    @property
    def window_us(self) -> int:
        return round(self.window_seconds * MICROS_PER_SECOND)

    @property
    def columns(self) -> list[str]:
        """The only columns this rule reads from storage."""
        extra = [self.group_by] if self.group_by else []
        return list(dict.fromkeys(["date", "severity", *extra, *self.reads]))

    def with_overrides(self, **overrides: object) -> "SlidingWindowRule":
        """The same rule with configured threshold / window / severities (None keeps the default)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def select(self, records: pd.DataFrame) -> "pd.Series | np.ndarray":
        """Which records are events (a boolean per row). `records` holds `self.columns`."""
        return severity_mask(pa.array(records["severity"]), self.severities).to_numpy(
            zero_copy_only=False
        )

    def event_mask(self, records: pa.Table | pa.RecordBatch) -> pa.Array:
        """`select` over Arrow data; the default runs on Arrow without a pandas round trip."""
        if type(self).select is SlidingWindowRule.select:
            return severity_mask(records.column("severity"), self.severities)
        chosen = self.select(records.to_pandas())
        return pa.array(np.asarray(chosen, dtype=bool))

    def events(self, records: pa.Table, data_until_us: int | None = None) -> Events:
        """The events among `records` (holding `self.columns`, `date` as timestamps)."""
        return self.events_of(records.filter(self.event_mask(records)), data_until_us)

    def events_of(self, chosen: pa.Table, data_until_us: int | None = None) -> Events:
        """Records already chosen by `event_mask` as Events: their times and, for a grouped
        rule, dictionary codes of their group (a missing group is its own)."""
        times = chosen.column("date").cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()
        if self.group_by is None:
            return Events(times, data_until_us=data_until_us)
        column = chosen.column(self.group_by)
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column.cast(pa.string()))
        encoded = pa.table({"group": column}).unify_dictionaries().column("group").combine_chunks()
        if not isinstance(encoded, pa.DictionaryArray):  # no chunks at all
            encoded = pa.array([], pa.dictionary(pa.int32(), pa.string()))
        labels = [*encoded.dictionary.to_pylist(), None]  # the last code: a missing value
        codes = pc.fill_null(encoded.indices, len(labels) - 1).to_numpy(zero_copy_only=False)
        return Events(times, codes, labels, data_until_us)

    def detect(self, events: Events) -> list[Incident]:
        """All incidents in `events`, exact, vectorized over events (a loop only over incidents)."""
        return detect_incidents(events, self)


def _sorted_events(events: Events) -> tuple[np.ndarray, np.ndarray, list]:
    """Times sorted by (group, time), with integer group codes and the code → label table."""
    times = np.asarray(events.times_us, dtype=np.int64)
    if events.groups is None:
        order = np.argsort(times, kind="stable")
        return times[order], np.zeros(len(times), dtype=np.int64), [None]
    if events.labels is not None:
        labels, codes = list(events.labels), np.asarray(events.groups, dtype=np.int64)
    else:
        labels, codes = np.unique(np.asarray(events.groups, dtype=object), return_inverse=True)
    order = np.lexsort((times, codes))
    return times[order], codes[order].astype(np.int64), list(labels)


def _group_keys(times: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, int]:
    """One sortable int64 key per event: group code × span + time offset, and the span, so that
    searching by key never crosses into another group."""
    origin = int(times.min())
    span = int(times.max()) - origin + 1
    if (int(codes.max()) + 1) * span >= 2**62:
        raise ValueError("too many groups over too long a time span for one detection call")
    return codes * span + (times - origin), span


def detect_incidents(events: Events, rule: SlidingWindowRule) -> list[Incident]:
    """Exact incidents of `rule` over `events` (see module docstring)."""
    times, codes, labels = _sorted_events(events)
    k, w = rule.threshold, rule.window_us
    n = len(times)
    if n <= k:
        return []
    breach = np.zeros(n, dtype=bool)
    breach[k:] = (codes[k:] == codes[:-k]) & (times[k:] - times[:-k] < w)
    idx = np.flatnonzero(breach)
    if len(idx) == 0:
        return []
    keys, span = _group_keys(times, codes)
    bt, bc = times[idx], codes[idx]
    # Window count at i: events of the group with time in (t[i] − W, t[i]] (not before the group).
    last_at_or_before = np.searchsorted(keys, keys[idx], side="right")
    window_floor = np.maximum(keys[idx] - w, bc * span - 1)
    first_in_window = np.searchsorted(keys, window_floor, side="right")
    window_counts = last_at_or_before - first_in_window
    # Cut into incidents where the group changes or consecutive breaches are W or more apart.
    new_incident = np.ones(len(idx), dtype=bool)
    new_incident[1:] = (bc[1:] != bc[:-1]) | (bt[1:] - bt[:-1] >= w)
    starts = np.flatnonzero(new_incident)
    ends = np.append(starts[1:], len(idx)) - 1
    peaks = np.maximum.reduceat(window_counts, starts)
    first, last = idx[starts], idx[ends]
    # event_count: events of the group with time in [t[a − k], t[b]].
    lo = np.searchsorted(keys, keys[first - k], side="left")
    hi = np.searchsorted(keys, keys[last], side="right")
    return [
        Incident(
            rule=rule.name,
            group_by=rule.group_by,
            group=None if labels[c] is None else str(labels[c]),
            start_us=int(times[a]),
            end_us=int(times[b - k]) + w,
            peak_count=int(p),
            event_count=int(h - lw),
            threshold=k,
            window_us=w,
            last_breach_us=int(times[b]),
        )
        for a, b, c, p, lw, h in zip(first, last, codes[first], peaks, lo, hi, strict=True)
    ]


def day_of_us(time_us: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=time_us // MICROS_PER_DAY)


def day_start_us(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * MICROS_PER_DAY


def lookback_days(rule: SlidingWindowRule) -> int:
    """Whole days before a partition needed to decide its breaches and continuations (2·W)."""
    return -(-2 * rule.window_us // MICROS_PER_DAY)


def incidents_for_day(
    rule: SlidingWindowRule, day: dt.date, events: Events, loaded_until_us: int
) -> tuple[list[Incident], bool]:
    """Incidents of `rule` that start on `day`, from the events loaded over [day − 2·W, loaded_until).

    Missing earlier events can only hide breaches, never invent them, and every breach from
    day − W on sees its whole window, so an incident is attributed to `day` exactly. The second
    value says whether all of them are complete: one whose last breach is less than W before
    `loaded_until_us` could go on in data not loaded yet, and the caller should load more.
    """
    lower = day_start_us(day)
    mine = [i for i in rule.detect(events) if lower <= i.start_us < lower + MICROS_PER_DAY]
    complete = all(i.last_breach_us + i.window_us <= loaded_until_us for i in mine)
    return mine, complete


@dataclass(frozen=True)
class DayDetection:
    """A rule's incidents starting on one day, and the days read to find them: `first` … `last`
    (2·W before, and after the day until every incident ended). `complete` is False when the
    data ran out before an incident ended (it is open: later data could still extend it);
    `data_until_us` is the newest record read."""

    incidents: list[Incident]
    first: dt.date
    last: dt.date
    complete: bool
    data_until_us: int | None


def detect_for_day(
    rule: SlidingWindowRule,
    day: dt.date,
    load_events: Callable[[dt.date, dt.date], Events],
    last_data_day: dt.date,
) -> DayDetection:
    """Incidents starting on `day`, loading the days it needs: 2·W before, and after it until
    every incident has ended (usually the next day is enough) or the data runs out. An incident
    whose last breach is less than W before the newest record read has not ended."""
    first = day - dt.timedelta(days=lookback_days(rule))
    last = day + dt.timedelta(days=1)
    while True:
        events = load_events(first, last)
        until_us = day_start_us(last + dt.timedelta(days=1))
        if events.data_until_us is not None:  # no record after it: the data ends there
            until_us = min(until_us, events.data_until_us)
        incidents, complete = incidents_for_day(rule, day, events, until_us)
        if complete or last >= last_data_day:
            return DayDetection(incidents, first, last, complete, events.data_until_us)
        last += dt.timedelta(days=1)
