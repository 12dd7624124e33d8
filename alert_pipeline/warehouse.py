"""The home folder on disk: landing, typed Parquet per UTC day, quarantine, the ledger of ingested
file versions, and the reads the rules and the report need.

Layout under the home folder:
    incoming/                                      files to ingest (.csv, .csv.gz), any name
    warehouse/validated_logs/day=D/<source>.parquet    valid records of one source file for day D
    warehouse/incidents/<rule>/day=D.json          incidents of one rule starting on day D
    warehouse/ledger/<source>.json                 what each ingested file version contributed
    quarantine/day=D/<source>.parquet              rejected records with file, record, column, reason
    quarantine/files/<name> (+ .reason.txt)        files rejected whole
    reports/D/alert_report.{json,md,html}

Day folders are named `day=` (not `date=`) so that hive partitioning in pyarrow or DuckDB adds a
`day` column instead of clashing with the records' own `date` column.

A source is one landing file name; its Parquet part per day is replaced as a whole when a new
version of that file arrives, so re-ingesting never duplicates rows. Every write is temp + rename.
"""

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alert_pipeline.loader import (
    LARGE_BLOCK_SIZE,
    FileRejected,
    Header,
    RecordTooLarge,
    Rejections,
    TimeRange,
    UndecodableRecord,
    read_batches,
    read_header,
    renumber,
)
from alert_pipeline.progress import Progress
from alert_pipeline.rules import (
    MICROS_PER_DAY,
    Events,
    SlidingWindowRule,
    day_of_us,
    day_start_us,
    severity_mask,
)
from alert_pipeline.schema import ARROW_SCHEMA

LOG_SUFFIXES = (".csv", ".csv.gz")
IN_PROGRESS_SUFFIXES = (".tmp", ".part")
UNDATED = "undated"
QUARANTINE_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("record_number", pa.int64()),
        ("column", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


@dataclass(frozen=True)
class Home:
    """Paths of one pipeline home folder (absolute, so that paths shown to users can be opened)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def validated(self) -> Path:
        return self.root / "warehouse" / "validated_logs"

    @property
    def incidents(self) -> Path:
        return self.root / "warehouse" / "incidents"

    @property
    def ledger(self) -> Path:
        return self.root / "warehouse" / "ledger"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def rejected_files(self) -> Path:
        return self.root / "quarantine" / "files"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    def day_dir(self, day: str) -> Path:
        return self.validated / f"day={day}"

    def quarantine_dir(self, day: str) -> Path:
        return self.quarantine / f"day={day}"

    def create(self) -> "Home":
        for folder in (self.incoming, self.validated, self.ledger, self.quarantine, self.reports):
            folder.mkdir(parents=True, exist_ok=True)
        return self


@dataclass
class DayCounts:
    read: int = 0
    stored: int = 0
    quarantined: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"read": self.read, "stored": self.stored, "quarantined": self.quarantined}


@dataclass
class FileOutcome:
    """What happened to one landing file in one ingestion pass."""

    name: str
    status: str  # ingested | unchanged | duplicate | rejected
    reason: str = ""
    days: dict[str, DayCounts] = field(default_factory=dict)
    changed_days: set[str] = field(default_factory=set)
    sha256: str = ""

    @property
    def read(self) -> int:
        return sum(c.read for c in self.days.values())

    @property
    def stored(self) -> int:
        return sum(c.stored for c in self.days.values())

    @property
    def quarantined(self) -> int:
        return sum(c.quarantined for c in self.days.values())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def atomic_write_json(path: Path, document: object) -> None:
    atomic_write_bytes(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())


def source_id(name: str) -> str:
    """A file-system-safe id for a landing file name: its parts are named after it."""
    return hashlib.sha256(name.encode()).hexdigest()[:20]


def storable(text: str) -> str:
    """Text with the bytes of a file name that are not UTF-8 (which Python holds as lone
    surrogates) as `\\xNN` escapes, so that it can be written as UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def landing_name(incoming: Path, path: Path) -> str:
    """A landing file's name: its path under the landing folder, storable."""
    return storable(path.relative_to(incoming).as_posix())


def content_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def landing_files(incoming: Path) -> list[Path]:
    """Log files waiting in the landing folder (writers' *.tmp / *.part names are not ready)."""
    if not incoming.is_dir():
        return []
    return sorted(
        path
        for path in incoming.rglob("*")
        if path.name.endswith(LOG_SUFFIXES)
        and not path.name.startswith(".")
        and not path.name.endswith(IN_PROGRESS_SUFFIXES)
        and (path.is_file() or path.is_symlink())  # links are checked, never followed blindly
    )


@contextmanager
def home_lock(home: Home) -> Iterator[None]:
    """One ingestion at a time per home: concurrent runs wait instead of racing on the same file."""
    home.root.mkdir(parents=True, exist_ok=True)
    with open(home.root / ".ingest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_ledger(home: Home) -> dict[str, dict]:
    """Ledger entries by landing file name."""
    entries = {}
    if home.ledger.is_dir():
        for path in sorted(home.ledger.glob("*.json")):
            entry = json.loads(path.read_text())
            entries[entry["file"]] = entry
    return entries


def _close_writers(writers: Iterable[pq.ParquetWriter], temps: Iterable[Path], keep: bool) -> None:
    """Close Parquet writers of temp files. `keep`: the files are wanted, so a failed close (a
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
        for temp in temps:
            temp.unlink(missing_ok=True)
    if error is not None and keep:
        raise error


class _DayWriters:
    """Open Parquet writers, one per UTC day a file's records fall on, writing to temp names."""

    def __init__(self, home: Home, source: str) -> None:
        self.home, self.source = home, source
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.temps: dict[str, Path] = {}

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
            folder = self.home.day_dir(day)
            folder.mkdir(parents=True, exist_ok=True)
            temp = folder / f".{self.source}.{os.getpid()}.tmp"
            self.temps[day] = temp
            self.writers[day] = pq.ParquetWriter(temp, ARROW_SCHEMA, compression="zstd")
        return self.writers[day]

    def close(self) -> dict[str, Path]:
        _close_writers(self.writers.values(), self.temps.values(), keep=True)
        return self.temps

    def abort(self) -> None:
        _close_writers(self.writers.values(), self.temps.values(), keep=False)


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


class _RejectionSpool:
    """A file's rejected records, spooled to disk as they come so memory stays flat however
    many there are; `split` writes them per day once their record numbers are final."""

    def __init__(self, home: Home, source: str) -> None:
        self.home, self.source, self.count = home, source, 0
        self.path = home.quarantine / f".{source}.{os.getpid()}.spool.tmp"
        self.writer: pq.ParquetWriter | None = None

    def add(self, rejections: Rejections, final_numbers: bool) -> None:
        if not len(rejections):
            return
        if self.writer is None:
            self.home.quarantine.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, SPOOL_SCHEMA)
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
    ) -> dict[str, tuple[Path, int]]:
        """Per-day quarantine temp files: record numbers shifted past the records Arrow skipped,
        undated records on `fallback_day`."""
        if self.writer is None:
            return {}
        writer, self.writer = self.writer, None
        _close_writers([writer], [self.path], keep=True)
        writers: dict[str, pq.ParquetWriter] = {}
        parts: dict[str, tuple[Path, int]] = {}
        try:
            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=65_536):
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
                        folder = self.home.quarantine_dir(day)
                        folder.mkdir(parents=True, exist_ok=True)
                        temp = folder / f".{self.source}.{os.getpid()}.tmp"
                        writers[day] = pq.ParquetWriter(temp, QUARANTINE_SCHEMA, compression="zstd")
                        parts[day] = (temp, 0)
                    rows = table.filter(pa.array(days == day))
                    writers[day].write_table(rows)
                    parts[day] = (parts[day][0], parts[day][1] + rows.num_rows)
        except BaseException:
            _close_writers(writers.values(), [temp for temp, _ in parts.values()], keep=False)
            raise
        else:
            _close_writers(writers.values(), [temp for temp, _ in parts.values()], keep=True)
        finally:
            self.path.unlink(missing_ok=True)
        return parts

    def abort(self) -> None:
        _close_writers([self.writer] if self.writer else [], [self.path], keep=False)


def _stage(
    home: Home,
    path: Path,
    source: str,
    time_range: TimeRange,
    header: Header,
    block_size: int = 0,
    repair: bool = False,
    progress: Progress | None = None,
) -> tuple["_DayWriters", dict[str, DayCounts], _RejectionSpool, tuple[int, ...]]:
    """Write a file's valid records to temp day parts and its rejections to a spool."""
    writers = _DayWriters(home, source)
    spool = _RejectionSpool(home, source)
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


def _stage_retrying(
    home: Home,
    path: Path,
    source: str,
    time_range: TimeRange,
    header: Header,
    progress: Progress | None = None,
) -> tuple["_DayWriters", dict[str, DayCounts], _RejectionSpool, tuple[int, ...]]:
    """`_stage`, read again with large blocks for a huge record, and repaired for a record
    pyarrow cannot report (each at most once)."""
    block_size, repair = 0, False
    while True:
        try:
            return _stage(home, path, source, time_range, header, block_size, repair, progress)
        except RecordTooLarge:
            if block_size:
                raise
            block_size = LARGE_BLOCK_SIZE
        except UndecodableRecord:
            if repair:
                raise
            repair = True


def ingest_file(
    home: Home,
    path: Path,
    time_range: TimeRange,
    previous: dict | None,
    original_of: Callable[[str], str | None],
    progress: Progress | None = None,
) -> FileOutcome:
    """Ingest one file version: stage its day parts, then swap them in and record it in the ledger.

    The content hash is computed beside the parsing; if it shows the content was already
    ingested under another name (`original_of`), the staged parts are dropped and the file is
    recorded as a duplicate. A file that cannot be parsed at all is moved to quarantine/files
    with a reason, and what an earlier version of it contributed stays as it was.
    """
    name = landing_name(home.incoming, path)
    source = source_id(name)
    stat = path.stat()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash") as hasher:
        hashing = hasher.submit(content_hash, path)
        try:
            header = read_header(path)
            staged = _stage_retrying(home, path, source, time_range, header, progress)
        except FileRejected as rejected:
            return _reject_file(home, path, name, str(rejected), previous)
        digest = hashing.result()
    writers, counts, spool, skipped = staged
    original = original_of(digest)
    if original is not None and original != name:
        writers.abort()
        spool.abort()
        return _record_duplicate(home, name, stat, digest, original, previous)
    temps = writers.close()
    quarantine_temps = {}
    for day, (temp, rows) in spool.split(name, skipped, min(counts) if counts else UNDATED).items():
        quarantine_temps[day] = temp
        counts.setdefault(day, DayCounts()).quarantined += rows
    for day_counts in counts.values():
        day_counts.read = day_counts.stored + day_counts.quarantined
    old_days = set(previous["days"]) if previous else set()
    _drop_parts(home, source, old_days - set(counts))
    for day in counts:
        final = home.day_dir(day) / f"{source}.parquet"
        if day in temps:
            os.replace(temps[day], final)
        else:
            final.unlink(missing_ok=True)
        q_final = home.quarantine_dir(day) / f"{source}.parquet"
        if day in quarantine_temps:
            os.replace(quarantine_temps[day], q_final)
        else:
            q_final.unlink(missing_ok=True)
    entry = {
        "file": name,
        "source": source,
        "sha256": digest,
        "version": _file_version(stat),
        "header": header.kind,
        "ingested_at": dt.datetime.now(dt.UTC).isoformat(),
        "days": {day: counts[day].as_dict() for day in sorted(counts)},
        "changed_days": sorted(set(counts) | old_days),
    }
    atomic_write_json(home.ledger / f"{source}.json", entry)
    return FileOutcome(
        name, "ingested", days=counts, changed_days=set(counts) | old_days, sha256=digest
    )


def _remove_stale_temps(home: Home) -> None:
    """Temp files of an ingestion that was killed (they are never read: readers only see
    `*.parquet` and `*.json`); safe under the home lock, which every ingestion holds. Files only:
    a rejected file keeps its landing folders in quarantine/files, and one may be named `.x.tmp`."""
    for folder in (home.validated, home.quarantine, home.ledger):
        for temp in folder.rglob(".*.tmp"):
            if temp.is_file() and not temp.is_symlink():
                temp.unlink(missing_ok=True)


def _why(error: OSError) -> str:
    """An OS error's reason without the path, which the message names already."""
    return error.strerror or str(error)


def _file_version(stat: os.stat_result) -> list[int]:
    """What tells a file version without reading it: size, mtime and ctime (a replaced or
    rewritten file always gets a new ctime, even when size and mtime are made to look the same)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _drop_parts(home: Home, source: str, days: Iterable[str]) -> None:
    for day in days:
        (home.day_dir(day) / f"{source}.parquet").unlink(missing_ok=True)
        (home.quarantine_dir(day) / f"{source}.parquet").unlink(missing_ok=True)


def _reject_file(
    home: Home, path: Path, name: str, reason: str, previous: dict | None
) -> FileOutcome:
    """Move a file that cannot be read at all to quarantine/files with its reason.

    What an earlier version of the file contributed stays; the ledger remembers this version so
    that it is not retried until it changes, even if it could not be moved.
    """
    reason = storable(reason)
    target = home.rejected_files / name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target.with_name(target.name + ".reason.txt"), (reason + "\n").encode())
        version = _file_version(path.lstat())
        shutil.move(str(path), target)  # a link is moved as a link, its target untouched
    except OSError as error:
        reason = storable(f"{reason} (could not move it to quarantine: {error})")
        version = _file_version(path.lstat()) if path.is_symlink() or path.exists() else [0, 0, 0]
    entry = dict(previous) if previous else {"file": name, "source": source_id(name), "days": {}}
    entry.update(version=version, rejected=reason, changed_days=[])
    atomic_write_json(home.ledger / f"{entry['source']}.json", entry)
    return FileOutcome(name, "rejected", reason=reason)


def _record_duplicate(
    home: Home, name: str, stat: os.stat_result, digest: str, original: str, previous: dict | None
) -> FileOutcome:
    """Content already ingested under another name adds no records; whatever an earlier
    version of this file contributed is withdrawn."""
    old_days = set(previous["days"]) if previous else set()
    _drop_parts(home, source_id(name), old_days)
    entry = {
        "file": name,
        "source": source_id(name),
        "sha256": digest,
        "version": _file_version(stat),
        "duplicate_of": original,
        "days": {},
        "changed_days": sorted(old_days),
    }
    atomic_write_json(home.ledger / f"{entry['source']}.json", entry)
    return FileOutcome(name, "duplicate", f"duplicate of {original}", changed_days=old_days)


def ingest_pending(
    home: Home,
    time_range: TimeRange,
    only: Collection[str] | None = None,
    min_age_seconds: float = 0.0,
    progress: Progress | None = None,
) -> list[FileOutcome]:
    """Ingest every landing file whose current version is not in the ledger yet.

    `only` limits the pass to the named files (the sensor's settled ones); `min_age_seconds`
    skips files modified more recently than that (they may still be being written). Unchanged
    files (same version, or same content) are skipped; a file whose content was already ingested
    under another name is recorded as a duplicate and adds no records. `progress` is told about
    each file parsed.
    """
    home.create()
    outcomes = []
    with home_lock(home):
        ledger = read_ledger(home)
        by_content = {
            entry["sha256"]: name
            for name, entry in ledger.items()
            if entry.get("sha256") and not entry.get("duplicate_of")
        }
        _remove_stale_temps(home)
        newest_mtime_ns = time.time_ns() - int(min_age_seconds * 1e9)
        landing = home.incoming.resolve()
        candidates = [
            (path, landing_name(home.incoming, path)) for path in landing_files(home.incoming)
        ]
        candidates = [(p, n) for p, n in candidates if only is None or n in only]
        for number, (path, name) in enumerate(candidates, start=1):
            previous = ledger.get(name)
            try:
                target = path.resolve()
            except (OSError, RuntimeError) as error:  # RuntimeError: a loop of links
                reason = "a loop of links" if isinstance(error, RuntimeError) else _why(error)
                outcomes.append(
                    _reject_file(home, path, name, f"cannot read it: {reason}", previous)
                )
                continue
            if not target.is_relative_to(landing):
                reason = f"a link to {target}, outside the landing folder"
                outcomes.append(_reject_file(home, path, name, reason, previous))
                continue
            try:
                stat = path.stat()
                if previous and previous.get("version") == _file_version(stat):
                    continue
                if min_age_seconds > 0 and stat.st_mtime_ns > newest_mtime_ns:
                    continue
                # Same size as the ingested version: maybe only touched, so hash before parsing.
                maybe_same = previous and previous.get("version", [None])[0] == stat.st_size
                digest = content_hash(path) if maybe_same else None
            except OSError as error:
                reason = f"cannot read it: {_why(error)}"
                outcomes.append(_reject_file(home, path, name, reason, previous))
                continue
            if digest and previous.get("sha256") == digest and not previous.get("rejected"):
                previous.update(version=_file_version(stat), changed_days=[])
                atomic_write_json(home.ledger / f"{previous['source']}.json", previous)
                outcomes.append(FileOutcome(name, "unchanged"))
                continue
            if digest and by_content.get(digest, name) != name:
                outcomes.append(
                    _record_duplicate(home, name, stat, digest, by_content[digest], previous)
                )
                continue
            if progress is not None:
                progress.start_file(name, stat.st_size, number, len(candidates))
            outcome = ingest_file(home, path, time_range, previous, by_content.get, progress)
            if progress is not None:
                progress.finish_file()
            if outcome.status == "ingested":
                by_content[outcome.sha256] = name
            outcomes.append(outcome)
    return outcomes


def day_counts(home: Home, day: str) -> DayCounts:
    """Records read / stored / quarantined for one day according to the ledger."""
    total = DayCounts()
    for entry in read_ledger(home).values():
        counts = entry["days"].get(day)
        if counts:
            total.read += counts["read"]
            total.stored += counts["stored"]
            total.quarantined += counts["quarantined"]
    return total


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def stored_rows(home: Home, day: str) -> int:
    """Rows actually in the day's Parquet parts (from their footers), to check the ledger."""
    return sum(pq.ParquetFile(part).metadata.num_rows for part in _parts(home.day_dir(day)))


def quarantined_rows(home: Home, day: str) -> int:
    return sum(pq.ParquetFile(part).metadata.num_rows for part in _parts(home.quarantine_dir(day)))


def quarantine_reasons(home: Home, day: str) -> dict[str, int]:
    """Counts of rejected records per column-level reason kind for the day."""
    counts: dict[str, int] = {}
    for part in _parts(home.quarantine_dir(day)):
        table = pq.read_table(part, columns=["column"])
        for column in table.column("column").to_pylist():
            key = column or "record"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def quarantine_reason_kinds(home: Home, day: str, name: str) -> dict[str, int]:
    """A file's quarantined records of a day by reason, without the values (most frequent
    first), e.g. {"date: not a number": 40}."""
    path = home.quarantine_dir(day) / f"{source_id(name)}.parquet"
    if not path.exists():
        return {}
    reasons = pq.read_table(path, columns=["reason"]).column("reason")
    kinds = pc.value_counts(pc.replace_substring_regex(reasons, r" \(.*$", "")).to_pylist()
    return {k["values"]: k["counts"] for k in sorted(kinds, key=lambda k: -k["counts"])}


def undated_records(ledger: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """Files with records that have no usable day (quarantine/day=undated): name → (those
    records, all records of the file)."""
    return {
        name: (
            entry["days"][UNDATED]["quarantined"],
            sum(c["read"] for c in entry["days"].values()),
        )
        for name, entry in ledger.items()
        if UNDATED in entry["days"]
    }


def days_with_data(home: Home) -> set[str]:
    return {day for entry in read_ledger(home).values() for day in entry["days"] if day != UNDATED}


def day_batches(home: Home, day: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The given columns of one day's valid records, a row group at a time: reads of a whole
    day never hold all of its rows (100 M records a day) in memory."""
    for part in _parts(home.day_dir(day)):
        yield from pq.ParquetFile(part).iter_batches(batch_size=1 << 20, columns=columns)


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
    (a re-ingested day has new files), so a kept table is never stale."""
    parts = _parts(home.day_dir(day))
    key = (repr(rule), tuple((str(p), *_identity(p.stat())) for p in parts))
    with _event_cache_lock:
        if key in _event_cache:
            _event_cache[key] = _event_cache.pop(key)  # the most recently used last
            return _event_cache[key]
    batches = [
        batch.cast(schema).filter(rule.event_mask(batch))
        for batch in day_batches(home, day, rule.columns)
    ]
    table = pa.Table.from_batches(batches, schema=schema)
    with _event_cache_lock:
        _event_cache[key] = table
        while sum(t.nbytes for t in _event_cache.values()) > EVENT_CACHE_BYTES:
            del _event_cache[next(iter(_event_cache))]
    return table


def newest_record_us(home: Home, days: list[str]) -> int | None:
    """The newest `date` of any record of the given days, from the Parquet footers' statistics."""
    newest = None
    for day in days:
        for part in _parts(home.day_dir(day)):
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
    atomic_write_json(path, document)
    return path


def read_incidents(home: Home, rule_name: str, day: str) -> dict | None:
    """A rule's stored incidents document of a day (None if there is none). A bare list, as
    written before the inputs were recorded, reads as built from unknown inputs."""
    path = home.incidents / rule_name / f"day={day}.json"
    if not path.exists():
        return None
    document = json.loads(path.read_text())
    return {"built_from": None, "incidents": document} if isinstance(document, list) else document
