"""Ingestion: every landing file whose current version is not in the ledger yet is staged, then
its day parts are swapped in and its ledger entry written. Re-ingesting a file replaces what its
earlier version contributed, so it never duplicates rows.
"""

import datetime as dt
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from alert_pipeline.atomic import write_atomic
from alert_pipeline.home import UNDATED, Home, landing_files, landing_name, source_id, storable
from alert_pipeline.ledger import (
    DayCounts,
    file_version,
    home_lock,
    read_ledger,
    write_entry,
)
from alert_pipeline.loader import FileRejected, TimeRange, read_header
from alert_pipeline.progress import Progress
from alert_pipeline.staging import stage


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


def content_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


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
            staged = stage(home, path, source, time_range, header, progress)
        except FileRejected as rejected:
            return _reject_file(home, path, name, str(rejected), previous)
        digest = hashing.result()
    writers, counts, spool, skipped = staged
    original = original_of(digest)
    if original is not None and original != name:
        writers.abort()
        spool.abort()
        return _record_duplicate(home, name, stat, digest, original, previous)
    staged = writers.close()
    quarantine_staged = {}
    for day, (part, rows) in spool.split(name, skipped, min(counts) if counts else UNDATED).items():
        quarantine_staged[day] = part
        counts.setdefault(day, DayCounts()).quarantined += rows
    for day_counts in counts.values():
        day_counts.read = day_counts.stored + day_counts.quarantined
    old_days = set(previous["days"]) if previous else set()
    _drop_parts(home, source, old_days - set(counts))
    for day in counts:
        for parts, folder in (
            (staged, home.day_dir(day)),
            (quarantine_staged, home.quarantine_dir(day)),
        ):
            if day in parts:
                parts[day].commit()
            else:
                (folder / f"{source}.parquet").unlink(missing_ok=True)
    entry = {
        "file": name,
        "source": source,
        "sha256": digest,
        "version": file_version(stat),
        "header": header.kind,
        "ingested_at": dt.datetime.now(dt.UTC).isoformat(),
        "days": {day: counts[day].as_dict() for day in sorted(counts)},
        "changed_days": sorted(set(counts) | old_days),
    }
    write_entry(home, entry)
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
        write_atomic(target.with_name(target.name + ".reason.txt"), reason + "\n")
        version = file_version(path.lstat())
        shutil.move(str(path), target)  # a link is moved as a link, its target untouched
    except OSError as error:
        reason = storable(f"{reason} (could not move it to quarantine: {error})")
        version = file_version(path.lstat()) if path.is_symlink() or path.exists() else [0, 0, 0]
    entry = dict(previous) if previous else {"file": name, "source": source_id(name), "days": {}}
    entry.update(version=version, rejected=reason, changed_days=[])
    write_entry(home, entry)
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
        "version": file_version(stat),
        "duplicate_of": original,
        "days": {},
        "changed_days": sorted(old_days),
    }
    write_entry(home, entry)
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
                if previous and previous.get("version") == file_version(stat):
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
                previous.update(version=file_version(stat), changed_days=[])
                write_entry(home, previous)
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
