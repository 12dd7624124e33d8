"""The fairness check of `alert-pipeline bench`: the breach events every competitor must agree on.

A race is only fair if everyone computes the same thing, so each competitor reports its set of
breaching events per rule and `check_agreement` compares the sets across competitors and repeats.
`breach_events` is the exact definition; the project's set is recomputed with it by `home_figures`
from the home it wrote (outside the timed part), which also checks its stored incidents against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

BreachSets = dict[str, set[tuple[str | None, int]]]


def breach_events(
    times_us: Sequence[int],
    groups: Sequence | None,
    threshold: int,
    window_us: int,
    labels: Sequence | None = None,
) -> set[tuple[str | None, int]]:
    """(group, time) of every event time t at which more than `threshold` events of the group
    fall in (t − W, t]. Defined on times, so it does not depend on how ties are ordered.

    `groups` holds each event's group label, or integer codes into `labels` when given."""
    import numpy as np

    times = np.asarray(times_us, dtype=np.int64)
    if groups is None:
        labels, codes = [None], np.zeros(len(times), dtype=np.int64)
    elif labels is not None:
        codes = np.asarray(groups, dtype=np.int64)
    else:
        values = np.asarray(groups, dtype=object)
        labels = sorted(set(values.tolist()), key=lambda v: (v is None, str(v)))
        index = {value: code for code, value in enumerate(labels)}
        codes = np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    order = np.lexsort((times, codes))
    times, codes = times[order], codes[order]
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [len(times)]])
    found: set[tuple[str | None, int]] = set()
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end - start <= threshold:
            continue
        ts = times[start:end]
        counts = np.searchsorted(ts, ts, side="right") - np.searchsorted(
            ts, ts - window_us, side="right"
        )
        label = labels[codes[start]]
        group = None if label is None else str(label)
        found.update((group, int(t)) for t in np.unique(ts[counts > threshold]))
    return found


def incidents_from_breaches(
    breaches: Iterable[tuple[str | None, int]], window_us: int
) -> set[tuple[str | None, int, int]]:
    """(group, first breach, last breach) of each run of breach times less than W apart."""
    by_group: dict[str | None, list[int]] = {}
    for group, time_us in breaches:
        by_group.setdefault(group, []).append(time_us)
    incidents = set()
    for group, times in by_group.items():
        times.sort()
        first = times[0]
        for previous, current in zip(times, times[1:], strict=False):
            if current - previous >= window_us:
                incidents.add((group, first, previous))
                first = current
        incidents.add((group, first, times[-1]))
    return incidents


def breaches_from_json(document: dict[str, list]) -> BreachSets:
    """The breach events a worker wrote to its result.json (lists of pairs), as sets."""
    return {rule: {(g, int(t)) for g, t in found} for rule, found in document.items()}


def home_figures(home_path: Path) -> dict:
    """From a home a project competitor wrote: records stored / quarantined, breach events per
    rule recomputed from the warehouse, and problems if its stored incidents do not match them."""
    from alert_pipeline.home import Home
    from alert_pipeline.ledger import days_with_data, read_ledger
    from alert_pipeline.registry import RULES
    from alert_pipeline.warehouse import read_events

    home = Home(home_path)
    days = sorted(days_with_data(home))
    ledger = read_ledger(home).values()
    stored = sum(c["stored"] for entry in ledger for c in entry["days"].values())
    quarantined = sum(c["quarantined"] for entry in ledger for c in entry["days"].values())
    breaches: BreachSets = {}
    problems = []
    for rule in RULES:
        events = read_events(home, rule, days)
        found = breach_events(
            events.times_us,
            events.groups,
            rule.threshold,
            rule.window_us,
            getattr(events, "labels", None),  # codes + labels once storage hands them so
        )
        breaches[rule.name] = found
        stored_incidents = set()
        for path in sorted((home.incidents / rule.name).glob("day=*.json")):
            for record in json.loads(path.read_text())["incidents"]:
                stored_incidents.add(
                    (record["group"], record["start_us"], record["last_breach_us"])
                )
        expected = incidents_from_breaches(found, rule.window_us)
        if stored_incidents != expected:
            problems.append(
                f"{rule.name}: stored incidents do not match the breach events "
                f"({len(stored_incidents - expected)} unexpected, "
                f"{len(expected - stored_incidents)} missing)"
            )
    return {
        "rows": stored + quarantined,
        "quarantined": quarantined,
        "breaches": breaches,
        "problems": problems,
    }


def check_agreement(runs: dict[str, list[dict]], rows: int) -> list[str]:
    """Problems that make the comparison unfair: a competitor that did not load every record, or
    whose breach events differ from the first competitor's (or from its own other repeats)."""
    problems = []
    reference_name, reference = None, None
    for competitor, results in runs.items():
        for number, result in enumerate(results, start=1):
            label = f"{competitor} (run {number})"
            problems += [f"{label}: {p}" for p in result.get("problems", [])]
            if result["rows"] != rows:
                problems.append(f"{label}: loaded {result['rows']} records, not {rows}")
            if reference is None:
                reference_name, reference = label, result["breaches"]
                continue
            for rule in sorted(set(reference) | set(result["breaches"])):
                mine, theirs = result["breaches"].get(rule, set()), reference.get(rule, set())
                if mine != theirs:
                    extra, missing = sorted(mine - theirs), sorted(theirs - mine)
                    problems.append(
                        f"{label} vs {reference_name}, {rule}: {len(mine)} vs {len(theirs)} "
                        f"breach events; {len(extra)} only in {competitor} (e.g. {extra[:3]}), "
                        f"{len(missing)} missing (e.g. {missing[:3]})"
                    )
    return problems
