"""Daily UTC partitions, and ranges of consecutive days (one run each)."""

import datetime as dt
from collections.abc import Iterable

from dagster import DailyPartitionsDefinition

from alert_pipeline.resources import START_DATE

# end_offset=1: today is a partition too, so hourly dumps of today are processed as they land.
daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC", end_offset=1)


def day_ranges(days: Iterable[str]) -> list[tuple[str, str]]:
    """Consecutive days grouped into (first, last) ranges, so each range can be one Dagster run."""
    ordered = sorted({dt.date.fromisoformat(d) for d in days})
    ranges: list[list[dt.date]] = []
    for day in ordered:
        if ranges and (day - ranges[-1][1]).days == 1:
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
