"""Ingestion: every landing file whose current version is not in the ledger yet is staged, then
its day parts are swapped in and its ledger entry written. Re-ingesting a file replaces what its
earlier version contributed, so it never duplicates rows.
"""

import datetime as dt
import glob
import hashlib
import os
import time
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alert_pipeline.atomic import move, remove, write_atomic
from alert_pipeline.batch_typing import TimeRange
from alert_pipeline.header import FileRejected, read_header
from alert_pipeline.home import (
    UNDATED,
    Home,
    is_log_name,
    landing_files,
    landing_name,
    source_id,
    storable,
)
from alert_pipeline.ledger import (
    DayCounts,
    day_lock,
    file_version,
    lock,
    original_of,
    read_entry,
    read_ledger,
    remove_claim_temps,
    write_entry,
)
from alert_pipeline.objects import object_home
from alert_pipeline.progress import Progress
from alert_pipeline.staging import Staged, stage


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


def _version(path: Path, stat: os.stat_result) -> list[int]:
    """A landing file's version; of a copy fetched from an object store, the object's (size and
    time: the copy has the object's time, its ctime is the fetch's)."""
    if object_home(path):
        return [stat.st_size, stat.st_mtime_ns, 0]
    return file_version(stat)


def landing_versions(home: Home) -> list[tuple[Path, str, list[int] | None]]:
    """Landing files: path, name and version (None: it cannot be read). In an object store,
    from the listing: a file is fetched only to be ingested."""
    if store := object_home(home.root):
        return [
            (path, landing_name(home.incoming, path), [info.size, info.mtime_ns, 0])
            for path, info in sorted(store.objects(home.incoming).items())
            if is_log_name(path.name)
        ]
    versions = []
    for path in landing_files(home.incoming):
        try:
            version = file_version(path.stat())
        except OSError:
            version = None
        versions.append((path, landing_name(home.incoming, path), version))
    return versions


def content_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def ingest_file(
    home: Home,
    path: Path,
    time_range: TimeRange,
    previous: dict | None,
    progress: Progress | None = None,
) -> FileOutcome:
    """Ingest one file version: stage its day parts, then swap them in and record it in the ledger.

    The content hash is computed beside the parsing; if it shows the content was already
    ingested under another name, the staged parts are dropped and the file is recorded as a
    duplicate; the check and the swap hold the content's lock, so of two names of one content
    ingested at once, exactly one is stored. A file that cannot be parsed at all is moved to
    quarantine/files with a reason, and what an earlier version of it contributed stays as it was.
    """
    name = landing_name(home.incoming, path)
    source = source_id(name)
    version = _version(path, path.stat())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash") as hasher:
        hashing = hasher.submit(content_hash, path)
        try:
            header = read_header(path)
            staged = stage(home, path, source, time_range, header, progress)
        except FileRejected as rejected:
            return _reject_file(home, path, name, str(rejected), previous)
        digest = hashing.result()
    with lock(home, f"content:{digest}"):
        remove_claim_temps(home, digest)
        return _swap_in(home, name, version, digest, header.kind, staged, previous)


def _swap_in(
    home: Home,
    name: str,
    version: list[int],
    digest: str,
    header_kind: str,
    staged: Staged,
    previous: dict | None,
) -> FileOutcome:
    """Commit a staged file version (or record it as a duplicate) and write its ledger entry."""
    source = source_id(name)
    writers, counts, spool, skipped = staged
    original = original_of(home, digest)
    if original is not None and original != name:
        writers.abort()
        spool.abort()
        return _record_duplicate(home, name, version, digest, original, previous)
    day_parts = writers.close()
    quarantine_parts = {}
    for day, (part, rows) in spool.split(name, skipped, min(counts) if counts else UNDATED).items():
        quarantine_parts[day] = part
        counts.setdefault(day, DayCounts()).quarantined += rows
    for day_counts in counts.values():
        day_counts.read = day_counts.stored + day_counts.quarantined
    old_days = set(previous["days"]) if previous else set()
    entry = {
        "file": name,
        "source": source,
        "sha256": digest,
        "version": version,
        "header": header_kind,
        "ingested_at": dt.datetime.now(dt.UTC).isoformat(),
        "days": {day: counts[day].as_dict() for day in sorted(counts)},
        "changed_days": sorted(set(counts) | old_days),
    }
    with day_lock(home, entry["changed_days"]):
        _drop_parts(home, source, old_days - set(counts))
        for day in counts:
            for parts, folder in (
                (day_parts, home.day_dir(day)),
                (quarantine_parts, home.quarantine_dir(day)),
            ):
                if day in parts:
                    parts[day].commit()
                else:
                    remove(folder / f"{source}.parquet")
        write_entry(home, entry)
    return FileOutcome(
        name, "ingested", days=counts, changed_days=set(counts) | old_days, sha256=digest
    )


def _temps(home: Home) -> Iterator[Path]:
    """Temp files of ingestions (`.<source>.….tmp`), live or killed: readers never see them
    (they read `*.parquet` and `*.json` only). Files only: a rejected file keeps its landing
    folders in quarantine/files, and one may be named like a temp file."""
    for folder, pattern in (
        (home.validated, "day=*/.*.*.tmp"),
        (home.quarantine, "day=*/.*.*.tmp"),
        (home.quarantine, ".*.*.tmp"),
        (home.ledger, ".*.*.tmp"),
    ):
        for temp in folder.glob(pattern):
            if temp.is_file() and not temp.is_symlink():
                yield temp


def _remove_dead_temps(home: Home) -> dict[str, list[Path]]:
    """Remove the temp files killed ingestions left, each file's under its lock (a live
    ingestion holds it); return those of files being ingested now, by source, to remove once
    their lock is ours (if their ingestion dies)."""
    by_source: dict[str, list[Path]] = {}
    for temp in _temps(home):
        by_source.setdefault(temp.name[1:].split(".")[0], []).append(temp)
    busy = {}
    for source, temps in sorted(by_source.items()):
        with lock(home, f"source:{source}", wait=False) as held:
            if not held:
                busy[source] = temps
                continue
            for temp in temps:
                temp.unlink(missing_ok=True)
    return busy


def _remove_reason_temps(home: Home, name: str) -> None:
    """A rejected file's reason being written when its ingestion was killed."""
    rejected = home.rejected_files / name
    for temp in rejected.parent.glob(f".{glob.escape(rejected.name)}.reason.txt.*.tmp"):
        temp.unlink(missing_ok=True)


def _why(error: OSError) -> str:
    """An OS error's reason without the path, which the message names already."""
    return error.strerror or str(error)


def _drop_parts(home: Home, source: str, days: Iterable[str]) -> None:
    for day in days:
        remove(home.day_dir(day) / f"{source}.parquet")
        remove(home.quarantine_dir(day) / f"{source}.parquet")


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
        write_atomic(target.with_name(target.name + ".reason.txt"), reason + "\n")
        version = _version(path, path.lstat())
        move(path, target)  # a link is moved as a link, its target untouched
    except OSError as error:
        reason = storable(f"{reason} (could not move it to quarantine: {error})")
        exists = path.is_symlink() or path.exists()
        version = _version(path, path.lstat()) if exists else [0, 0, 0]
    entry = dict(previous) if previous else {"file": name, "source": source_id(name), "days": {}}
    entry.update(version=version, rejected=reason, changed_days=[])
    write_entry(home, entry)
    return FileOutcome(name, "rejected", reason=reason)


def _record_duplicate(
    home: Home, name: str, version: list[int], digest: str, original: str, previous: dict | None
) -> FileOutcome:
    """Content already ingested under another name adds no records; whatever an earlier
    version of this file contributed is withdrawn."""
    old_days = set(previous["days"]) if previous else set()
    entry = {
        "file": name,
        "source": source_id(name),
        "sha256": digest,
        "version": version,
        "duplicate_of": original,
        "days": {},
        "changed_days": sorted(old_days),
    }
    with day_lock(home, old_days):
        _drop_parts(home, source_id(name), old_days)
        write_entry(home, entry)
    return FileOutcome(name, "duplicate", f"duplicate of {original}", changed_days=old_days)


def ingest_pending(
    home: Home,
    time_range: TimeRange,
    only: Collection[str] | None = None,
    progress: Progress | None = None,
) -> list[FileOutcome]:
    """Ingest every landing file whose current version is not in the ledger yet.

    `only` limits the pass to the named files (the sensor's settled ones). Unchanged files
    (same version, or same content) are skipped; a file whose content was already ingested under
    another name is recorded as a duplicate and adds no records. `progress` is told about each
    file parsed. Each file is handled under its own lock: ingestions of different files run
    at once (in several processes or on several machines), two of one file take turns.
    """
    home.create()
    outcomes = []
    busy = _remove_dead_temps(home)
    pending = pending_files(home, only=only)
    for number, (path, name) in enumerate(pending, start=1):
        with lock(home, f"source:{source_id(name)}"):
            for temp in busy.get(source_id(name), []):
                temp.unlink(missing_ok=True)
            _remove_reason_temps(home, name)
            place = (number, len(pending))
            with _fetched(path):
                outcome = _ingest_candidate(home, path, name, time_range, progress, place)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


@contextmanager
def _fetched(path: Path) -> Iterator[None]:
    """A landing file of a home in an object store, fetched into the cache for its ingestion and
    removed after (its object stays, as a landing file does); elsewhere the file as it is."""
    store = object_home(path)
    if store is None:
        yield
        return
    try:
        store.fetch(path)  # absent if its object is gone meanwhile: then nothing is done
        yield
    finally:
        path.unlink(missing_ok=True)


def pending_files(
    home: Home, min_age_seconds: float = 0.0, only: Collection[str] | None = None
) -> list[tuple[Path, str]]:
    """Landing files (path, name) whose current version is not in the ledger, and not modified
    in the last `min_age_seconds`; `only`: of these names. Decided without locks: ingestion
    decides again under each file's lock."""
    known = read_ledger(home)
    newest_mtime_ns = time.time_ns() - int(min_age_seconds * 1e9)
    pending = []
    for path, name, version in landing_versions(home):
        if only is not None and name not in only:
            continue
        if version is None:
            pending.append((path, name))  # to be rejected, with the reason
            continue
        if known.get(name, {}).get("version") == version:
            continue
        if min_age_seconds > 0 and version[1] > newest_mtime_ns:
            continue
        pending.append((path, name))
    return pending


def _ingest_candidate(
    home: Home,
    path: Path,
    name: str,
    time_range: TimeRange,
    progress: Progress | None,
    place: tuple[int, int],
) -> FileOutcome | None:
    """One landing file (number `place[0]` of `place[1]`), under its lock: None when there is
    nothing to do for it."""
    if not os.path.lexists(path):
        return None  # moved away meanwhile (rejected by another ingestion) or deleted
    previous = read_entry(home, name)
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a loop of links
        reason = "a loop of links" if isinstance(error, RuntimeError) else _why(error)
        return _reject_file(home, path, name, f"cannot read it: {reason}", previous)
    if not target.is_relative_to(home.incoming.resolve()):
        reason = f"a link to {target}, outside the landing folder"
        return _reject_file(home, path, name, reason, previous)
    try:
        stat = path.stat()
        if previous and previous.get("version") == _version(path, stat):
            return None
        # Same size as the ingested version: maybe only touched, so hash before parsing.
        maybe_same = previous and previous.get("version", [None])[0] == stat.st_size
        digest = content_hash(path) if maybe_same else None
    except OSError as error:
        return _reject_file(home, path, name, f"cannot read it: {_why(error)}", previous)
    if digest and previous.get("sha256") == digest and not previous.get("rejected"):
        previous.update(version=_version(path, stat), changed_days=[])
        write_entry(home, previous)
        return FileOutcome(name, "unchanged")
    original = original_of(home, digest) if digest else None
    if original not in (None, name):
        return _record_duplicate(home, name, _version(path, stat), digest, original, previous)
    if progress is not None:
        progress.start_file(name, stat.st_size, *place)
    outcome = ingest_file(home, path, time_range, previous, progress)
    if progress is not None:
        progress.finish_file()
    return outcome
