"""Staging one landing file: its valid records written to Parquet per UTC day and its rejected
records to quarantine parts, all under temp names until the caller commits them together.
"""

import datetime as dt
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alert_pipeline.atomic import StagedFile
from alert_pipeline.batch_typing import Rejections, TimeRange
from alert_pipeline.header import Header
from alert_pipeline.home import Home
from alert_pipeline.ledger import DayCounts
from alert_pipeline.loader import (
    LARGE_BLOCK_SIZE,
    RecordTooLarge,
    UndecodableRecord,
    read_batches,
    renumber,
)
from alert_pipeline.progress import Progress
from alert_pipeline.rules import MICROS_PER_DAY, day_of_us
from alert_pipeline.schema import ARROW_SCHEMA
from alert_pipeline.warehouse import row_groups

QUARANTINE_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("record_number", pa.int64()),
        ("column", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


def _close_writers(
    writers: Iterable[pq.ParquetWriter], files: Iterable[StagedFile], keep: bool
) -> None:
    """Close Parquet writers of staged files. `keep`: the files are wanted, so a failed close (a
    full disk) is raised, after every writer is closed and the temp files are removed; else
    failures are ignored and the files removed. No writer is left to fail again when collected."""
    error = None
    for writer in writers:
        try:
            writer.close()
        except OSError as failure:
            writer.is_open = False
            error = error or failure
    if error is not None or not keep:
        for staged in files:
            staged.discard()
    if error is not None and keep:
        raise error


class DayWriters:
    """Open Parquet writers, one per UTC day a file's records fall on, writing to temp names."""

    def __init__(self, home: Home, source: str) -> None:
        self.home, self.source = home, source
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.parts: dict[str, StagedFile] = {}

    def write(self, table: pa.Table) -> dict[str, int]:
        if table.num_rows == 0:
            return {}
        days = pc.divide(table.column("date").cast(pa.int64()), MICROS_PER_DAY).to_numpy()
        counts = {}
        for day_number in np.unique(days):
            day = str(dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number)))
            part = (
                table
                if len(counts) == 0 and (days == day_number).all()
                else table.filter(pa.array(days == day_number))
            )
            self._writer(day).write_table(part)
            counts[day] = part.num_rows
        return counts

    def _writer(self, day: str) -> pq.ParquetWriter:
        if day not in self.writers:
            part = StagedFile(self.home.day_dir(day) / f"{self.source}.parquet")
            self.parts[day] = part
            self.writers[day] = pq.ParquetWriter(part.temp, ARROW_SCHEMA, compression="zstd")
        return self.writers[day]

    def close(self) -> dict[str, StagedFile]:
        _close_writers(self.writers.values(), self.parts.values(), keep=True)
        return self.parts

    def abort(self) -> None:
        _close_writers(self.writers.values(), self.parts.values(), keep=False)


SPOOL_SCHEMA = pa.schema(
    [
        ("record_number", pa.int64()),
        ("final_number", pa.bool_()),
        ("column", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
        ("day_us", pa.int64()),
    ]
)


class RejectionSpool:
    """A file's rejected records, spooled to disk as they come so memory stays flat however
    many there are; `split` writes them per day once their record numbers are final."""

    def __init__(self, home: Home, source: str) -> None:
        self.home, self.source, self.count = home, source, 0
        self.spool = StagedFile(home.quarantine / f"{source}.spool")  # scratch, never committed
        self.writer: pq.ParquetWriter | None = None

    def add(self, rejections: Rejections, final_numbers: bool) -> None:
        if not len(rejections):
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.spool.temp, SPOOL_SCHEMA)
        table = pa.table(
            {
                "record_number": pa.array(rejections.record_numbers, pa.int64()),
                "final_number": pa.array([final_numbers] * len(rejections), pa.bool_()),
                "column": pa.array(rejections.columns, pa.string()),
                "reason": pa.array(rejections.reasons, pa.string()),
                "raw": pa.array(rejections.raws, pa.string()),
                "day_us": pa.array(rejections.days_us, pa.int64()),
            },
            schema=SPOOL_SCHEMA,
        )
        self.writer.write_table(table)
        self.count += len(rejections)

    def split(
        self, name: str, skipped: tuple[int, ...], fallback_day: str
    ) -> dict[str, tuple[StagedFile, int]]:
        """Per-day staged quarantine parts and their row counts: record numbers shifted past the records Arrow skipped,
        undated records on `fallback_day`."""
        if self.writer is None:
            return {}
        writer, self.writer = self.writer, None
        _close_writers([writer], [self.spool], keep=True)
        writers: dict[str, pq.ParquetWriter] = {}
        parts: dict[str, tuple[StagedFile, int]] = {}
        try:
            for batch in row_groups(self.spool.temp):
                known = np.asarray(batch.column("record_number").is_valid())
                numbers = batch.column("record_number").fill_null(0).to_numpy()
                final = batch.column("final_number").to_numpy(zero_copy_only=False)
                numbers = np.where(final, numbers, renumber(numbers, skipped))
                day_us = batch.column("day_us").to_numpy(zero_copy_only=False)
                days = np.array(
                    [fallback_day if np.isnan(d) else str(day_of_us(int(d))) for d in day_us]
                )
                table = pa.table(
                    {
                        "file": pa.array([name] * batch.num_rows, pa.string()),
                        "record_number": pa.array(numbers, pa.int64(), mask=~known),
                        "column": batch.column("column"),
                        "reason": batch.column("reason"),
                        "raw": batch.column("raw"),
                    },
                    schema=QUARANTINE_SCHEMA,
                )
                for day in np.unique(days):
                    if day not in writers:
                        part = StagedFile(self.home.quarantine_dir(day) / f"{self.source}.parquet")
                        writers[day] = pq.ParquetWriter(
                            part.temp, QUARANTINE_SCHEMA, compression="zstd"
                        )
                        parts[day] = (part, 0)
                    rows = table.filter(pa.array(days == day))
                    writers[day].write_table(rows)
                    parts[day] = (parts[day][0], parts[day][1] + rows.num_rows)
        except BaseException:
            _close_writers(writers.values(), [part for part, _ in parts.values()], keep=False)
            raise
        else:
            _close_writers(writers.values(), [part for part, _ in parts.values()], keep=True)
        finally:
            self.spool.discard()
        return parts

    def abort(self) -> None:
        _close_writers([self.writer] if self.writer else [], [self.spool], keep=False)


Staged = tuple[DayWriters, dict[str, DayCounts], RejectionSpool, tuple[int, ...]]
"""Staged day parts, records stored per day, the spooled rejections, the records Arrow skipped."""


def _stage_once(
    home: Home,
    path: Path,
    source: str,
    time_range: TimeRange,
    header: Header,
    block_size: int = 0,
    repair: bool = False,
    progress: Progress | None = None,
) -> Staged:
    """Write a file's valid records to temp day parts and its rejections to a spool."""
    writers = DayWriters(home, source)
    spool = RejectionSpool(home, source)
    counts: dict[str, DayCounts] = {}
    skipped: tuple[int, ...] = ()
    # Parquet encoding runs on a second thread, overlapping the parsing and typing of the next
    # batch (both release the GIL); at most two batches wait for it, so memory stays flat.
    pending: deque[Future] = deque()

    def collect(future: Future) -> None:
        for day, stored in future.result().items():
            counts.setdefault(day, DayCounts()).stored += stored

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet") as encoder:
        try:
            for batch in read_batches(path, time_range, header, block_size, repair):
                pending.append(encoder.submit(writers.write, batch.valid))
                while len(pending) > 2:
                    collect(pending.popleft())
                skipped = skipped or batch.skipped_records
                spool.add(batch.rejections, final_numbers=bool(batch.skipped_records))
                if progress is not None:
                    progress.update(batch.bytes_read, batch.valid.num_rows + len(batch.rejections))
            while pending:
                collect(pending.popleft())
        except BaseException:
            for future in pending:
                future.cancel()
            encoder.shutdown(wait=True)
            writers.abort()
            spool.abort()
            raise
    return writers, counts, spool, skipped


def stage(
    home: Home,
    path: Path,
    source: str,
    time_range: TimeRange,
    header: Header,
    progress: Progress | None = None,
) -> Staged:
    """`_stage_once`, read again with large blocks for a huge record, and repaired for a record
    pyarrow cannot report (each at most once)."""
    block_size, repair = 0, False
    while True:
        try:
            return _stage_once(home, path, source, time_range, header, block_size, repair, progress)
        except RecordTooLarge:
            if block_size:
                raise
            block_size = LARGE_BLOCK_SIZE
        except UndecodableRecord:
            if repair:
                raise
            repair = True
