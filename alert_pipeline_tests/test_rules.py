"""Tests of `alert_pipeline.rules` against the spec (docs: alert-semantics).

- a brute-force oracle written from the spec's definitions (`oracle.py`) vs `detect`, with
  Hypothesis: ties, gaps of exactly W and W±1 µs, tiny inputs, many groups, unsorted input;
- the spec's worked examples, exact to the microsecond;
- the "days, partitions and midnight" contract: the union of daily reports (with lookback and
  lookahead) equals the one-shot computation, each incident exactly once;
- rule construction and configuration.
"""

import dataclasses
import datetime as dt
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alert_pipeline.rules import (
    DEFAULT_SEVERITIES,
    MICROS_PER_DAY,
    MICROS_PER_SECOND,
    Events,
    Incident,
    SlidingWindowRule,
    day_start_us,
    incidents_for_day,
    lookback_days,
)

try:  # imported as a package (python -m pytest from the repo root) or as a rootdir module
    from alert_pipeline_tests.oracle import OracleIncident, oracle_incidents, window_count
except ImportError:  # pragma: no cover - depends on how pytest puts the tests on sys.path
    from oracle import OracleIncident, oracle_incidents, window_count

US = MICROS_PER_SECOND
MINUTE = 60 * US
HOUR = 3600 * US

PROPERTY = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DAY_PROPERTY = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------------------------
# Helpers


def make_rule(threshold: int, window_us: int, grouped: bool, name: str = "r") -> SlidingWindowRule:
    rule = SlidingWindowRule(
        name=name,
        threshold=threshold,
        window_seconds=window_us / US,
        group_by="bundle_id" if grouped else None,
    )
    assert rule.window_us == window_us
    return rule


def make_events(times: list[int], groups: list[str] | None) -> Events:
    return Events(
        np.asarray(times, dtype=np.int64),
        None if groups is None else np.asarray(groups, dtype=object),
    )


def as_oracle(incident: Incident) -> OracleIncident:
    return OracleIncident(
        incident.group,
        incident.start_us,
        incident.end_us,
        incident.peak_count,
        incident.event_count,
        incident.last_breach_us,
    )


def full_key(incident: Incident) -> tuple:
    """Every field, sortable (group None sorts as '')."""
    fields = dataclasses.astuple(incident)
    return tuple("" if f is None else f for f in fields) + (incident.incident_id,)


def check_against_oracle(
    rule: SlidingWindowRule, times: list[int], groups: list[str] | None
) -> list[Incident]:
    got = rule.detect(make_events(times, groups))
    expected = oracle_incidents(times, groups, rule.threshold, rule.window_us)
    actual = sorted((as_oracle(i) for i in got), key=lambda i: (i.group or "", i.start_us))
    assert actual == expected, f"detect != oracle for k={rule.threshold} W={rule.window_us}"
    for incident in got:
        assert incident.rule == rule.name
        assert incident.group_by == rule.group_by
        assert incident.threshold == rule.threshold
        assert incident.window_us == rule.window_us
    return got


# ---------------------------------------------------------------------------------------------
# Strategies

windows = st.one_of(
    st.integers(1, 20),  # a few µs: every tie and ±1 matters
    st.sampled_from([2, 3, MINUTE, MINUTE - 1, HOUR, US]),
    st.integers(1, HOUR),
)
bases = st.one_of(
    st.sampled_from([0, 1_700_000_000 * US, day_start_us(dt.date(2024, 3, 10)) - 7]),
    st.integers(0, 2**50),
)


@st.composite
def time_offsets(draw, w: int, k: int, max_n: int) -> list[int]:
    """Event times relative to a base, in one of several shapes that stress the definitions."""
    n = draw(st.integers(0, max_n))
    shape = draw(st.sampled_from(["uniform", "lattice", "ties", "bursts", "stream"]))
    if shape == "uniform":
        span = draw(st.integers(0, 4 * w + 2))
        return draw(st.lists(st.integers(0, span), min_size=n, max_size=n))
    if shape == "lattice":
        # Multiples of W or W/2 plus −2..+2 µs: gaps of exactly W and W ± 1.
        step = draw(st.sampled_from([w, max(w // 2, 1), w + 1, max(w - 1, 1)]))
        cells = st.tuples(st.integers(0, 12), st.sampled_from([0, 0, 0, 1, -1, 2, -2]))
        pairs = draw(st.lists(cells, min_size=n, max_size=n))
        return [m * step + d + 2 for m, d in pairs]
    if shape == "ties":
        values = draw(st.lists(st.integers(0, 3 * w), min_size=1, max_size=4))
        return draw(st.lists(st.sampled_from(values), min_size=n, max_size=n))
    if shape == "bursts":
        centers = draw(st.lists(st.integers(0, 6 * w), min_size=1, max_size=4))
        spread = draw(st.one_of(st.integers(0, max(w // k, 1)), st.integers(0, 2 * w)))
        cells = st.tuples(st.sampled_from(centers), st.integers(0, spread))
        return [c + o for c, o in draw(st.lists(cells, min_size=n, max_size=n))]
    # A steady stream hovering around the threshold: period ≈ W / k, with jitter.
    period = max(w // k + draw(st.integers(-2, 2)), 0)
    jitter = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    return [i * period + j for i, j in enumerate(jitter)]


@st.composite
def scenarios(draw, max_n: int = 70):
    k = draw(st.integers(1, 12))
    w = draw(windows)
    base = draw(bases)
    offsets = draw(time_offsets(w, k, max_n))
    offsets = draw(st.permutations(offsets))  # input order is arbitrary
    times = [base + o for o in offsets]
    grouped = draw(st.booleans())
    groups = None
    if grouped:
        labels = draw(
            st.one_of(
                st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True),
                st.lists(st.text("xyz9", min_size=1, max_size=3), min_size=1, max_size=20),
            )
        )
        groups = draw(st.lists(st.sampled_from(labels), min_size=len(times), max_size=len(times)))
    return make_rule(k, w, grouped), times, groups


# ---------------------------------------------------------------------------------------------
# 1–2. detect vs the brute-force oracle


@PROPERTY
@given(scenarios())
def test_detect_matches_oracle(scenario):
    rule, times, groups = scenario
    check_against_oracle(rule, times, groups)


@PROPERTY
@given(
    k=st.integers(1, 12),
    w=windows,
    base=bases,
    data=st.data(),
)
def test_tiny_inputs_have_no_incident(k, w, base, data):
    """n ≤ k events can never hold k+1 events in a window, whatever their times."""
    n = data.draw(st.integers(0, k))
    times = [base + t for t in data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))]
    rule = make_rule(k, w, grouped=False)
    assert rule.detect(make_events(times, None)) == []
    assert check_against_oracle(rule, times, None) == []


@PROPERTY
@given(scenarios(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter(scenario, rnd):
    rule, times, groups = scenario
    order = list(range(len(times)))
    rnd.shuffle(order)
    shuffled_times = [times[i] for i in order]
    shuffled_groups = None if groups is None else [groups[i] for i in order]
    a = sorted(rule.detect(make_events(times, groups)), key=full_key)
    b = sorted(rule.detect(make_events(shuffled_times, shuffled_groups)), key=full_key)
    assert a == b
    assert [i.incident_id for i in a] == [i.incident_id for i in b]


@PROPERTY
@given(scenarios())
def test_incident_ids_are_stable_and_distinct(scenario):
    rule, times, groups = scenario
    first = rule.detect(make_events(times, groups))
    again = rule.detect(make_events(list(times), None if groups is None else list(groups)))
    assert sorted(i.incident_id for i in first) == sorted(i.incident_id for i in again)
    ids = [i.incident_id for i in first]
    assert len(set(ids)) == len(ids), "two incidents of one rule share an id"
    for incident in first:
        # Same (rule, group, start) → same id, whatever the other fields say.
        moved_end = dataclasses.replace(incident, end_us=incident.end_us + 1, peak_count=99)
        assert moved_end.incident_id == incident.incident_id
        # A different start, rule or group → a different id.
        for later in (1, rule.window_us):
            moved = dataclasses.replace(incident, start_us=incident.start_us + later)
            assert moved.incident_id != incident.incident_id
        assert dataclasses.replace(incident, rule=rule.name + "x").incident_id != (
            incident.incident_id
        )
        other_group = "other" if incident.group is None else incident.group + "_"
        assert dataclasses.replace(incident, group=other_group).incident_id != (
            incident.incident_id
        )


def test_incident_id_is_stable_across_processes_literal():
    """The id is a pure function of (rule, group, start): pin one value so it can't drift."""
    incident = Incident(
        "fatal_errors_per_minute", None, None, 10 * US, 79 * US, 30, 30, 10, MINUTE, 29 * US
    )
    same = Incident("fatal_errors_per_minute", None, None, 10 * US, 1, 1, 1, 10, MINUTE, 1)
    assert incident.incident_id == same.incident_id
    assert len(incident.incident_id) == 16
    int(incident.incident_id, 16)


def test_peak_counts_only_the_groups_own_events():
    """A grouped rule's window count must not include another group's events.

    Group "a" has one late event; group "b" has 11 events at t=0 (one breach, peak 11). The
    window (−W, 0] of b holds exactly b's 11 events.
    """
    rule = make_rule(10, MINUTE, grouped=True)
    times = [30 * US] + [0] * 11
    groups = ["a"] + ["b"] * 11
    assert oracle_incidents(times, groups, 10, MINUTE) == [
        OracleIncident("b", 0, MINUTE, 11, 11, 0)
    ]
    check_against_oracle(rule, times, groups)


# ---------------------------------------------------------------------------------------------
# 3. The spec's worked examples (W = 60 s, k = 10)

S = US  # one second in µs
WORKED_EXAMPLES = [
    pytest.param([0] * 10 + [60 * S], [], id="span exactly W: nothing"),
    pytest.param(
        [0] * 10 + [59_999_999],
        [(59_999_999, 60 * S, 11, 11)],
        id="span W-1us: one incident",
    ),
    pytest.param([0] * 11, [(0, 60 * S, 11, 11)], id="11 at one instant"),
    pytest.param([i * S for i in range(30)], [(10 * S, 79 * S, 30, 30)], id="one a second 0-29"),
    pytest.param(
        [i * 5_900_000 for i in range(40)],
        [(59 * S, 231_100_000, 11, 40)],
        id="every 5.9 s, 40 events",
    ),
    pytest.param(
        [i * S for i in range(30)] + [i * S for i in range(100, 115)],
        [(10 * S, 79 * S, 30, 30), (110 * S, 164 * S, 15, 15)],
        id="two bursts 0-29 and 100-114",
    ),
]


@pytest.mark.parametrize("times, expected", WORKED_EXAMPLES)
@pytest.mark.parametrize("grouped", [False, True])
def test_worked_examples(times, expected, grouped):
    rule = make_rule(10, MINUTE, grouped=grouped, name="fatal_errors_per_minute")
    groups = ["com.example.app"] * len(times) if grouped else None
    shuffled = list(times)
    random.Random(7).shuffle(shuffled)
    got = sorted(rule.detect(make_events(shuffled, groups)), key=lambda i: i.start_us)
    assert [(i.start_us, i.end_us, i.peak_count, i.event_count) for i in got] == expected
    # The oracle agrees with the spec's numbers too.
    assert [(o[1], o[2], o[3], o[4]) for o in oracle_incidents(times, groups, 10, MINUTE)] == (
        expected
    )
    for incident in got:
        assert incident.group == ("com.example.app" if grouped else None)
        assert incident.threshold == 10 and incident.window_us == MINUTE


def test_window_count_is_half_open():
    ts = [0, 10, 60 * S]
    assert window_count(ts, 60 * S, MINUTE) == 2  # 0 is exactly W before: out
    assert window_count(ts, 60 * S - 1, MINUTE) == 2  # (−1, 59.999999] holds 0 and 10


# ---------------------------------------------------------------------------------------------
# 4. Days, partitions and midnight

D0 = dt.date(2024, 3, 10)
T0 = day_start_us(D0)


def days_of(times: list[int]) -> list[dt.date]:
    first, last = min(times) // MICROS_PER_DAY, max(times) // MICROS_PER_DAY
    epoch = dt.date(1970, 1, 1)
    return [epoch + dt.timedelta(days=d) for d in range(first, last + 1)]


def restrict(times: np.ndarray, groups: np.ndarray | None, lo: int, hi: int) -> Events:
    keep = (times >= lo) & (times < hi)
    return Events(times[keep], None if groups is None else groups[keep])


def report_day(
    rule: SlidingWindowRule, day: dt.date, times: np.ndarray, groups: np.ndarray | None
) -> list[Incident]:
    """What the partition of `day` reports: lookback before it, lookahead until complete."""
    lower = day_start_us(day) - lookback_days(rule) * MICROS_PER_DAY
    loaded_until = day_start_us(day + dt.timedelta(days=2))
    while True:
        incidents, complete = incidents_for_day(
            rule, day, restrict(times, groups, lower, loaded_until), loaded_until
        )
        for incident in incidents:
            assert incident.day == day, "an incident reported by a day that is not its start day"
        if complete or not (times >= loaded_until).any():
            return incidents
        loaded_until += MICROS_PER_DAY


def check_daily_union(rule, times: list[int], groups: list[str] | None, day_order=None):
    t = np.asarray(times, dtype=np.int64)
    g = None if groups is None else np.asarray(groups, dtype=object)
    one_shot = rule.detect(Events(t, g))
    days = day_order if day_order is not None else days_of(times)
    reported = [i for day in days for i in report_day(rule, day, t, g)]
    counts = Counter(full_key(i) for i in reported)
    assert all(c == 1 for c in counts.values()), "an incident reported more than once"
    assert sorted(counts) == sorted(full_key(i) for i in one_shot)
    return one_shot


@st.composite
def multi_day(draw, grouped: bool):
    k = draw(st.integers(1, 12))
    w = draw(
        st.one_of(
            st.sampled_from([MINUTE, HOUR, 1, MINUTE - 1]),
            st.integers(1, 2 * MINUTE),
            st.integers(1, HOUR),
            st.integers(12 * HOUR - 2, 30 * HOUR),  # lookback of 1, 2 and 3 days
        )
    )
    times: list[int] = []
    # Scattered background over three days.
    times += draw(st.lists(st.integers(0, 3 * MICROS_PER_DAY - 1), max_size=30))
    # Bursts straddling a midnight: events in the last/first few W around it.
    for _ in range(draw(st.integers(0, 4))):
        midnight = draw(st.sampled_from([1, 2, 3])) * MICROS_PER_DAY
        center = midnight + draw(st.integers(-2 * w, 2 * w))
        spread = draw(st.one_of(st.integers(0, max(w // k, 1)), st.integers(0, 2 * w)))
        count = draw(st.integers(0, 3 * k + 3))
        times += [
            center + o
            for o in draw(st.lists(st.integers(-spread, spread), min_size=count, max_size=count))
        ]
    # Sometimes a steady stream that crosses midnight (a long incident, maybe days long).
    if draw(st.booleans()):
        period = max(w // k + draw(st.integers(-3, 3)), 1)
        count = min(draw(st.integers(k + 1, 250)), 3 * MICROS_PER_DAY // period + 1)
        start = draw(st.integers(0, 3 * MICROS_PER_DAY))
        times += [start + i * period for i in range(count)]
    assume(times)
    times = [T0 + x for x in draw(st.permutations(times))]
    groups = None
    if grouped:
        labels = draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True))
        groups = draw(st.lists(st.sampled_from(labels), min_size=len(times), max_size=len(times)))
    return make_rule(k, w, grouped), times, groups


@DAY_PROPERTY
@given(multi_day(grouped=False), st.randoms(use_true_random=False))
def test_daily_reports_union_equals_one_shot(scenario, rnd):
    rule, times, groups = scenario
    days = days_of(times)
    rnd.shuffle(days)  # partitions materialized in any order
    check_daily_union(rule, times, groups, days)


@DAY_PROPERTY
@given(multi_day(grouped=True), st.randoms(use_true_random=False))
def test_daily_reports_union_equals_one_shot_grouped(scenario, rnd):
    rule, times, groups = scenario
    days = days_of(times)
    rnd.shuffle(days)
    check_daily_union(rule, times, groups, days)


def test_breach_across_midnight_is_reported_by_the_new_day():
    """6 fatal events at 23:59:55 and 5 at 00:00:03 are one breach, reported by the new day."""
    rule = make_rule(10, MINUTE, grouped=False, name="fatal_errors_per_minute")
    midnight = day_start_us(D0 + dt.timedelta(days=1))
    times = [midnight - 5 * S] * 6 + [midnight + 3 * S] * 5
    t = np.asarray(times, dtype=np.int64)

    [incident] = rule.detect(Events(t))
    assert (incident.start_us, incident.end_us) == (midnight + 3 * S, midnight + 55 * S)
    assert (incident.peak_count, incident.event_count) == (11, 11)
    assert incident.day == D0 + dt.timedelta(days=1)

    # The old day's partition reports nothing, even with the new day loaded.
    assert report_day(rule, D0, t, None) == []
    # The new day's partition sees it thanks to the lookback (its own file alone holds 5 events).
    only_new_day = restrict(t, None, midnight, midnight + 2 * MICROS_PER_DAY)
    assert rule.detect(only_new_day) == []
    assert report_day(rule, D0 + dt.timedelta(days=1), t, None) == [incident]
    check_daily_union(rule, times, None)


def test_incident_across_midnight_is_reported_once_by_its_start_day_with_full_extent():
    """One event a second from 23:59:30 to 00:00:40: starts before midnight, ends after it."""
    rule = make_rule(10, MINUTE, grouped=True, name="fatal_errors_per_bundle")
    midnight = day_start_us(D0 + dt.timedelta(days=1))
    times = [midnight + s * S for s in range(-30, 41)]
    groups = ["com.example.app"] * len(times)
    t, g = np.asarray(times, dtype=np.int64), np.asarray(groups, dtype=object)

    [incident] = rule.detect(Events(t, g))
    assert incident.start_us == midnight - 20 * S
    assert incident.last_breach_us == midnight + 40 * S
    assert incident.end_us == midnight + 90 * S  # t[b − k] = 00:00:30, + W
    assert (incident.peak_count, incident.event_count) == (60, 71)
    assert incident.day == D0

    # With only the start day loaded the incident looks shorter and is flagged incomplete.
    partial, complete = incidents_for_day(
        rule, D0, restrict(t, g, day_start_us(D0) - MICROS_PER_DAY, midnight), midnight
    )
    assert not complete
    assert [i.start_us for i in partial] == [incident.start_us]
    assert partial[0].end_us < incident.end_us
    # With the next day loaded (lookahead) it is complete, with its full extent, same id.
    full, complete = incidents_for_day(
        rule,
        D0,
        restrict(t, g, day_start_us(D0) - MICROS_PER_DAY, midnight + MICROS_PER_DAY),
        midnight + MICROS_PER_DAY,
    )
    assert complete and full == [incident]
    assert full[0].incident_id == partial[0].incident_id
    # The new day does not report it again.
    assert report_day(rule, D0 + dt.timedelta(days=1), t, g) == []
    check_daily_union(rule, times, groups)


def test_complete_flag_boundary():
    """Complete iff the last breach is at least W before `loaded_until`: a later breach would be
    W or more after it, hence a new incident."""
    rule = make_rule(1, MINUTE, grouped=False)
    loaded_until = day_start_us(D0 + dt.timedelta(days=1))
    for last_breach, complete in [
        (loaded_until - MINUTE, True),
        (loaded_until - MINUTE + 1, False),
    ]:
        events = make_events([last_breach - 1, last_breach], None)
        [incident], flag = incidents_for_day(rule, D0, events, loaded_until)
        assert incident.last_breach_us == last_breach and flag is complete
    assert incidents_for_day(rule, D0, make_events([], None), loaded_until) == ([], True)


def test_long_incident_needs_several_days_of_lookahead():
    """A steady stream over two and a half days is one incident, reported once, in full."""
    rule = make_rule(3, HOUR, grouped=False)
    period = 1000 * S  # 4 events per 3000 s < 1 h: every event from the 4th on breaches
    times = [T0 + 20 * HOUR + i * period for i in range(int(2.5 * MICROS_PER_DAY) // period)]
    [incident] = check_daily_union(rule, times, None)
    assert incident.start_us == times[3] and incident.last_breach_us == times[-1]
    assert incident.event_count == len(times)


# ---------------------------------------------------------------------------------------------
# 5. Rule construction


@pytest.mark.parametrize("threshold", [0, -1, -10])
def test_threshold_below_one_is_rejected(threshold):
    with pytest.raises(ValueError):
        SlidingWindowRule("r", threshold=threshold, window_seconds=60)


@pytest.mark.parametrize("window", [0, 0.0, -1, -0.5])
def test_non_positive_window_is_rejected(window):
    with pytest.raises(ValueError):
        SlidingWindowRule("r", threshold=10, window_seconds=window)


def test_smallest_valid_rule():
    rule = SlidingWindowRule("r", threshold=1, window_seconds=1e-6)
    assert rule.window_us == 1
    assert rule.detect(make_events([5, 5], None))[0].start_us == 5  # ties are < 1 µs apart
    assert rule.detect(make_events([5, 6], None)) == []  # 1 µs apart is exactly W


@pytest.mark.parametrize(
    "seconds, micros", [(60, MINUTE), (3600, HOUR), (59.999999, 59_999_999), (0.000001, 1)]
)
def test_window_us(seconds, micros):
    assert SlidingWindowRule("r", threshold=10, window_seconds=seconds).window_us == micros


def test_severities_are_normalised():
    rule = SlidingWindowRule("r", 10, 60, severities=frozenset({" Error ", "FATAL", "fatal\n"}))
    assert rule.severities == frozenset({"error", "fatal"})
    assert SlidingWindowRule("r", 10, 60).severities == DEFAULT_SEVERITIES == {"error", "fatal"}
    # Overrides go through the same normalisation.
    assert rule.with_overrides(severities=frozenset({" CRIT "})).severities == {"crit"}


def test_with_overrides():
    rule = SlidingWindowRule("r", 10, 60, group_by="bundle_id", description="d")
    assert rule.with_overrides() == rule
    assert rule.with_overrides(threshold=None, window_seconds=None, severities=None) == rule
    changed = rule.with_overrides(threshold=5, window_seconds=None)
    assert (changed.threshold, changed.window_seconds) == (5, 60)
    assert dataclasses.replace(changed, threshold=10) == rule
    changed = rule.with_overrides(window_seconds=3600, threshold=None)
    assert (changed.threshold, changed.window_us) == (10, HOUR)
    assert rule.threshold == 10 and rule.window_seconds == 60  # the original is untouched
    with pytest.raises(ValueError):
        rule.with_overrides(threshold=0)
    with pytest.raises(ValueError):
        rule.with_overrides(window_seconds=0)


def test_columns_are_only_what_the_rule_needs():
    assert SlidingWindowRule("r", 10, 60).columns == ["date", "severity"]
    grouped = SlidingWindowRule("r", 10, 3600, group_by="bundle_id")
    assert grouped.columns == ["date", "severity", "bundle_id"]
    assert "sdk_date" not in grouped.columns


@pytest.mark.parametrize(
    "window_us, days",
    [
        (1, 1),
        (MINUTE, 1),
        (HOUR, 1),
        (12 * HOUR, 1),
        (12 * HOUR + 1, 2),
        (24 * HOUR, 2),
        (36 * HOUR, 3),
    ],
)
def test_lookback_covers_two_windows(window_us, days):
    rule = make_rule(10, window_us, grouped=False)
    assert lookback_days(rule) == days
    assert lookback_days(rule) * MICROS_PER_DAY >= 2 * window_us


def test_days():
    assert day_start_us(dt.date(1970, 1, 2)) == MICROS_PER_DAY
    assert day_start_us(D0) % MICROS_PER_DAY == 0
    inc = Incident("r", None, None, day_start_us(D0) - 1, 0, 0, 0, 1, 1, 0)
    assert inc.day == D0 - dt.timedelta(days=1)
    assert dataclasses.replace(inc, start_us=day_start_us(D0)).day == D0


def test_events_length_mismatch_is_rejected():
    with pytest.raises(ValueError):
        Events(np.array([1, 2]), np.array(["a"], dtype=object))
