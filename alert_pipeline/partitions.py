"""Daily UTC partitions, and ranges of consecutive days (one run each; one run per day when a
run's steps are spread over workers, so that days spread over them too)."""

import datetime as dt
from collections.abc import Iterable

from dagster import BackfillPolicy, DailyPartitionsDefinition

from alert_pipeline.executors import distributed
from alert_pipeline.resources import START_DATE

# end_offset=1: today is a partition too, so hourly dumps of today are processed as they land.
daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC", end_offset=1)


def days_per_run() -> int | None:
    """At most this many days in one run (None: a whole range). One machine: a range is one run,
    so a day's few steps do not pay a run each; with workers, a run per day keeps them all busy."""
    return 1 if distributed() else None


def backfill_policy() -> BackfillPolicy:
    longest = days_per_run()
    return BackfillPolicy.single_run() if longest is None else BackfillPolicy.multi_run(longest)


def day_ranges(days: Iterable[str], longest: int | None = None) -> list[tuple[str, str]]:
    """Consecutive days grouped into (first, last) ranges of at most `longest` days, so each
    range can be one Dagster run."""
    ordered = sorted({dt.date.fromisoformat(d) for d in days})
    ranges: list[list[dt.date]] = []
    for day in ordered:
        if (
            ranges
            and (day - ranges[-1][1]).days == 1
            and (longest is None or (day - ranges[-1][0]).days < longest)
        ):
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    return [(str(first), str(last)) for first, last in ranges]


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run materialize a range of partitions (single-run backfill policy)."""
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
