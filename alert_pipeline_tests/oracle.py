"""Brute-force reference for the alert semantics, written from docs/alert-semantics only.

Deliberately naive and independent of `alert_pipeline.rules` (no numpy, no searchsorted, no
composite keys): per group, sort the times and apply each definition literally, counting window
members by scanning every event of the group (O(n²)). Use it on small inputs only.
"""

from collections.abc import Iterable, Sequence
from typing import NamedTuple


class OracleIncident(NamedTuple):
    """The fields an incident must have, in a form that sorts and compares plainly."""

    group: str | None
    start_us: int
    end_us: int
    peak_count: int
    event_count: int
    last_breach_us: int


def window_count(group_times: Sequence[int], at_us: int, window_us: int) -> int:
    """Number of the group's events with time in (at − W, at]: scan them all."""
    return sum(1 for x in group_times if at_us - window_us < x <= at_us)


def oracle_group(times: Iterable[int], threshold: int, window_us: int) -> list[tuple]:
    """Incidents of one group as (start, end, peak, event_count, last_breach) tuples."""
    t = sorted(int(x) for x in times)
    k, w = threshold, window_us
    breaches = [i for i in range(len(t)) if i >= k and t[i] - t[i - k] < w]
    runs: list[list[int]] = []
    for i in breaches:
        if runs and t[i] - t[runs[-1][-1]] < w:
            runs[-1].append(i)
        else:
            runs.append([i])
    out = []
    for run in runs:
        a, b = run[0], run[-1]
        start = t[a]
        end = t[b - k] + w
        peak = max(window_count(t, t[i], w) for i in run)
        event_count = sum(1 for x in t if t[a - k] <= x <= t[b])
        out.append((start, end, peak, event_count, t[b]))
    return out


def oracle_incidents(
    times: Sequence[int],
    groups: Sequence[str] | None,
    threshold: int,
    window_us: int,
) -> list[OracleIncident]:
    """All incidents over all groups (group None when ungrouped), sorted."""
    by_group: dict[str | None, list[int]] = {}
    if groups is None:
        by_group[None] = [int(x) for x in times]
    else:
        if len(groups) != len(times):
            raise ValueError("times and groups must have the same length")
        for x, g in zip(times, groups, strict=True):
            by_group.setdefault(str(g), []).append(int(x))
    result = [
        OracleIncident(g, *fields)
        for g, ts in by_group.items()
        for fields in oracle_group(ts, threshold, window_us)
    ]
    return sorted(result, key=lambda i: ("" if i.group is None else i.group, i.start_us))
