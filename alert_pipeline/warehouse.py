"""Reads of the warehouse (the typed Parquet per UTC day and the quarantine) that the rules,
checks and report need, and the store of each rule's incidents per day.
"""

import datetime as dt
import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alert_pipeline.atomic import write_json_atomic
from alert_pipeline.home import Home, source_id
from alert_pipeline.objects import synced, synced_file
from alert_pipeline.rules import (
    MICROS_PER_DAY,
    Events,
    SlidingWindowRule,
    day_start_us,
    severity_mask,
)
from alert_pipeline.schema import ARROW_SCHEMA


def _parts(folder: Path) -> list[Path]:
    folder = synced(folder)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def _opened(parts: Iterable[Path]) -> Iterator[BinaryIO]:
    """Each listed part opened in turn (and closed after). Readers outside a day's lock may race
    an ingestion that replaces or drops a part after the listing: a part gone by then is left
    out, an opened one is read whole as it was. The ledger state such a read's output records
    was read first, so it is never newer than the data: the output is found stale and rebuilt."""
    for part in parts:
        with ExitStack() as stack:
            try:
                handle = stack.enter_context(open(part, "rb"))
            except FileNotFoundError:
                continue
            yield handle


def stored_rows(home: Home, day: str) -> int:
    """Rows actually in the day's Parquet parts (from their footers), to check the ledger."""
    return sum(pq.ParquetFile(part).metadata.num_rows for part in _parts(home.day_dir(day)))


def quarantined_rows(home: Home, day: str) -> int:
    return sum(pq.ParquetFile(part).metadata.num_rows for part in _parts(home.quarantine_dir(day)))


def quarantine_reasons(home: Home, day: str) -> dict[str, int]:
    """Counts of rejected records per column-level reason kind for the day."""
    counts: dict[str, int] = {}
    for part in _opened(_parts(home.quarantine_dir(day))):
        table = pq.read_table(part, columns=["column"])
        for column in table.column("column").to_pylist():
            key = column or "record"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def quarantine_reason_kinds(home: Home, day: str, name: str) -> dict[str, int]:
    """A file's quarantined records of a day by reason, without the values (most frequent
    first), e.g. {"date: not a number": 40}."""
    path = synced_file(home.quarantine_dir(day) / f"{source_id(name)}.parquet")
    if not path.exists():
        return {}
    reasons = pq.read_table(path, columns=["reason"]).column("reason")
    kinds = pc.value_counts(pc.replace_substring_regex(reasons, r" \(.*$", "")).to_pylist()
    return {k["values"]: k["counts"] for k in sorted(kinds, key=lambda k: -k["counts"])}


def row_groups(path: Path | BinaryIO, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's batches, one row group at a time. `ParquetFile.iter_batches` over a whole
    file keeps the raw bytes of every row group it has read until it ends (0.4 GB for the
    `date` column of a 100 M-record day); asked for one row group at a time, it keeps one."""
    parquet = pq.ParquetFile(path)
    for group in range(parquet.num_row_groups):
        yield from parquet.iter_batches(batch_size=1 << 20, row_groups=[group], columns=columns)


def day_batches(home: Home, day: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The given columns of one day's valid records, a row group at a time: reads of a whole
    day never hold all of its rows (100 M records a day) in memory."""
    for part in _opened(_parts(home.day_dir(day))):
        yield from row_groups(part, columns)


def _fatal_batches(
    home: Home, day: str, columns: list[str], severities: Iterable[str]
) -> Iterator[pa.RecordBatch]:
    for batch in day_batches(home, day, columns):
        yield batch.filter(severity_mask(batch.column("severity"), severities))


def read_events(home: Home, rule: SlidingWindowRule, days: list[str]) -> Events:
    """Events of `rule` over the given days, reading only the columns the rule needs and keeping
    only the rule's events of each row group."""
    schema = pa.schema([ARROW_SCHEMA.field(c) for c in rule.columns])
    tables = [_day_events(home, rule, schema, day) for day in days]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return rule.events_of(table, newest_record_us(home, days))


EVENT_CACHE_BYTES = 128 << 20


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


_event_cache: dict[tuple, pa.Table] = {}  # oldest first
_event_cache_lock = threading.Lock()


def _day_events(home: Home, rule: SlidingWindowRule, schema: pa.Schema, day: str) -> pa.Table:
    """One day's events of a rule. Kept for the next days' detections, which read this day again
    as their neighbour (up to EVENT_CACHE_BYTES); keyed by the day's Parquet files as they are
    (a re-ingested day has new files), and kept only if the files read are the ones of the key
    (an ingestion may change them in between), so a kept table is never stale."""
    listed = {}
    for part in _parts(home.day_dir(day)):
        with suppress(FileNotFoundError):
            listed[str(part)] = _identity(part.stat())
    key = (repr(rule), tuple(listed.items()))
    with _event_cache_lock:
        if key in _event_cache:
            _event_cache[key] = _event_cache.pop(key)  # the most recently used last
            return _event_cache[key]
    batches, read = [], {}
    for handle in _opened(map(Path, listed)):
        read[handle.name] = _identity(os.fstat(handle.fileno()))
        batches += [
            batch.cast(schema).filter(rule.event_mask(batch))
            for batch in row_groups(handle, rule.columns)
        ]
    table = pa.Table.from_batches(batches, schema=schema)
    if read == listed:
        with _event_cache_lock:
            _event_cache[key] = table
            while sum(t.nbytes for t in _event_cache.values()) > EVENT_CACHE_BYTES:
                del _event_cache[next(iter(_event_cache))]
    return table


def newest_record_us(home: Home, days: list[str]) -> int | None:
    """The newest `date` of any record of the given days, from the Parquet footers' statistics."""
    newest = None
    for day in days:
        for part in _opened(_parts(home.day_dir(day))):
            metadata = pq.ParquetFile(part).metadata
            column = metadata.schema.names.index("date")
            for group in range(metadata.num_row_groups):
                stats = metadata.row_group(group).column(column).statistics
                if stats is not None and stats.has_min_max:
                    newest = max(newest or stats.max_raw, stats.max_raw)
    return newest


def fatal_counts_per_minute(times_us: Iterable[int] | np.ndarray, day: str) -> np.ndarray:
    """Events per minute of the UTC day (1440 counts) from event times; others are ignored."""
    times = np.asarray(times_us, dtype=np.int64)
    start = day_start_us(dt.date.fromisoformat(day))
    offsets = times[(times >= start) & (times < start + MICROS_PER_DAY)] - start
    return np.bincount(offsets // 60_000_000, minlength=1440).astype(np.int64)


def fatal_per_minute(home: Home, day: str, severities: Iterable[str]) -> np.ndarray:
    """Fatal events per minute of the UTC day (1440 counts), for the report's plot."""
    counts = np.zeros(1440, dtype=np.int64)
    for batch in _fatal_batches(home, day, ["date", "severity"], severities):
        counts += fatal_counts_per_minute(batch.column("date").cast(pa.int64()).to_numpy(), day)
    return counts


def severity_counts(home: Home, day: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for batch in day_batches(home, day, ["severity"]):
        for value in pc.value_counts(batch.column("severity").cast(pa.string())).to_pylist():
            key = str(value["values"])
            counts[key] = counts.get(key, 0) + int(value["counts"])
    return dict(sorted(counts.items()))


def write_incidents(home: Home, rule_name: str, day: str, document: dict) -> Path:
    """Replace a rule's incidents of a day: `{"built_from": …, "incidents": […]}`."""
    path = home.incidents / rule_name / f"day={day}.json"
    write_json_atomic(path, document)
    return path


def read_incidents(home: Home, rule_name: str, day: str) -> dict | None:
    """A rule's stored incidents document of a day (None if there is none). A bare list, as
    written before the inputs were recorded, reads as built from unknown inputs."""
    path = synced_file(home.incidents / rule_name / f"day={day}.json")
    if not path.exists():
        return None
    document = json.loads(path.read_text())
    return {"built_from": None, "incidents": document} if isinstance(document, list) else document
