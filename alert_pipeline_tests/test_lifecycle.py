"""The lifecycle of a paged incident (notifications/lifecycle.py), decision by decision: what the
rules see now against what was decided before."""

import dataclasses
import datetime as dt

from alert_pipeline.notifications.lifecycle import Known, Seen, reconcile
from alert_pipeline.rules import Incident, day_start_us

DAY = "2021-09-14"
S = 1_000_000
T0 = day_start_us(dt.date(2021, 9, 14)) + 10 * 3600 * S
NOW = T0 + 3600 * S
MAX_AGE = 48 * 3600 * S


def incident(start: int = 0, end: int = 60, peak: int = 11, group: str | None = None) -> Incident:
    return Incident(
        rule="fatal_errors_per_minute",
        group_by="bundle_id" if group else None,
        group=group,
        start_us=T0 + start * S,
        end_us=T0 + end * S,
        peak_count=peak,
        event_count=peak,
        threshold=10,
        window_us=60 * S,
        last_breach_us=T0 + (end - 60) * S,
    )


def decide(seen: list[Seen], known: list[Known], now: int = NOW, quiet: str = ""):
    return reconcile(seen, known, {DAY}, now, MAX_AGE, quiet)


def test_a_new_fresh_incident_fires_once() -> None:
    [change] = decide([Seen(incident(), open=False)], [])
    assert change.status == "firing" and change.new
    known = change.known
    assert (known.key, known.revision, known.state, known.paged) == (
        incident().incident_id,
        1,
        "ended",
        True,
    )
    assert decide([Seen(incident(), open=False)], [known]) == []  # seen again: nothing


def test_historical_backfilled_and_unconfigured_incidents_are_recorded_not_paged_ever() -> None:
    long_after = T0 + MAX_AGE + 3600 * S
    [old] = decide([Seen(incident(), False)], [], now=long_after)
    [backfilled] = decide([Seen(incident(), False)], [], quiet="backfill")
    [unconfigured] = decide([Seen(incident(), False)], [], quiet="unconfigured")
    for change, reason in (
        (old, "historical"),
        (backfilled, "backfill"),
        (unconfigured, "unconfigured"),
    ):
        assert change.status is None and change.new
        assert not change.known.paged and change.known.reason == reason
        [bigger] = decide([Seen(incident(peak=30), False)], [change.known])
        assert bigger.status is None and bigger.known.incident.peak_count == 30
        [gone] = decide([], [bigger.known])
        assert gone.status is None and gone.known.state == "withdrawn"


def test_open_then_closed_is_resolved_and_a_later_change_updated() -> None:
    [fired] = decide([Seen(incident(end=60), open=True)], [])
    assert fired.status == "firing" and fired.known.state == "open"
    [resolved] = decide([Seen(incident(end=90, peak=14), open=False)], [fired.known])
    assert resolved.status == "resolved" and resolved.known.revision == 2
    assert (resolved.known.incident.end_us, resolved.known.state) == (T0 + 90 * S, "ended")
    [updated] = decide([Seen(incident(end=95, peak=15), open=False)], [resolved.known])
    assert updated.status == "updated" and updated.known.revision == 3


def test_late_data_moving_the_start_keeps_the_first_key() -> None:
    [fired] = decide([Seen(incident(start=0, end=60, group="app"), False)], [])
    earlier = incident(start=-30, end=60, group="app")  # a new id: its start moved
    assert earlier.incident_id != fired.known.key
    [moved] = decide([Seen(earlier, False)], [fired.known])
    assert moved.status == "updated" and not moved.new
    assert moved.known.key == fired.known.key and moved.known.incident == earlier
    # another group's incident at the same time is another incident
    other = incident(start=-30, group="other")
    [fired_other] = decide([Seen(earlier, False), Seen(other, False)], [moved.known])
    assert fired_other.new and fired_other.status == "firing"
    assert fired_other.known.key == other.incident_id


def test_a_removed_incident_is_withdrawn_and_a_restored_one_fires_again() -> None:
    [fired] = decide([Seen(incident(), False)], [])
    [withdrawn] = decide([], [fired.known])
    assert withdrawn.status == "withdrawn" and withdrawn.known.revision == 2
    assert decide([], [withdrawn.known]) == []
    [back] = decide([Seen(incident(), False)], [withdrawn.known])
    assert back.status == "firing" and back.known.revision == 3


def test_only_the_decided_days_withdraw_and_fire() -> None:
    """A neighbour day's incidents help match moved incidents; they are decided by their day."""
    neighbour = dataclasses.replace(incident(), start_us=T0 - 86_400 * S, end_us=T0 - 86_340 * S)
    assert decide([Seen(neighbour, False)], []) == []
    [fired] = decide([Seen(incident(), False)], [])
    elsewhere = dataclasses.replace(fired.known, incident=neighbour)
    assert decide([], [elsewhere]) == []


def test_merged_incidents_keep_the_earliest_key_and_withdraw_the_other() -> None:
    first, second = incident(start=0, end=60), incident(start=200, end=260)
    a, b = decide([Seen(first, False), Seen(second, False)], [])
    merged = incident(start=0, end=260, peak=25)
    changes = {c.known.key: c for c in decide([Seen(merged, False)], [a.known, b.known])}
    assert changes[a.known.key].status == "updated"
    assert changes[b.known.key].status == "withdrawn"
