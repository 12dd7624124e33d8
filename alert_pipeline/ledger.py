"""The ledger: one entry per landing file name, saying which version of the file was ingested and
what it contributed to each day (records read, stored, quarantined); and the locks that keep two
ingestions of one file (or of one content under two names) from racing, and a day's readers from
seeing its parts and counts half changed.

The ledger lives in the home (`warehouse/ledger/<source>.json`, locks are `flock`s on files in
`.locks/`) unless `ALERT_PIPELINE_STATE_URL=postgresql://…` is set: then entries are rows of
Postgres and locks are Postgres session advisory locks, released by the server when the holder
dies, so workers on several machines can share one home.
"""

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from alert_pipeline.atomic import write_json_atomic
from alert_pipeline.home import UNDATED, Home, source_id
from alert_pipeline.objects import synced, synced_file

STATE_URL_ENV = "ALERT_PIPELINE_STATE_URL"
TABLE = "alert_pipeline_ledger"


@dataclass
class DayCounts:
    read: int = 0
    stored: int = 0
    quarantined: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"read": self.read, "stored": self.stored, "quarantined": self.quarantined}


def state_url() -> str | None:
    return os.environ.get(STATE_URL_ENV) or None


def connect(url: str):
    """A new autocommit connection to the state database."""
    import psycopg2  # installed with dagster-postgres

    connection = psycopg2.connect(url)
    connection.autocommit = True
    return connection


_connections: dict[tuple[str, int], object] = {}
_connections_lock = threading.Lock()


def _connection(url: str):
    """This process's connection (created with the table if needed)."""
    key = (url, os.getpid())  # a forked child must not share its parent's connection
    with _connections_lock:
        if key not in _connections or _connections[key].closed:
            connection = connect(url)
            with connection.cursor() as cursor:
                # One transaction, serialised: concurrent CREATE IF NOT EXISTS can still collide.
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(7305880345620235264); "
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (home text NOT NULL, file text NOT NULL, "
                    "sha256 text, original boolean NOT NULL, entry jsonb NOT NULL, "
                    "PRIMARY KEY (home, file)); "
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_by_content ON {TABLE} (home, sha256)"
                )
            _connections[key] = connection
        return _connections[key]


def _query(url: str, sql: str, arguments: tuple = ()) -> list[tuple]:
    """Run one statement (each is idempotent); once more on a new connection if the server
    dropped this one, as when it restarts: a long-lived sensor process must not fail from then on."""
    import psycopg2

    connection = _connection(url)
    try:
        return _execute(connection, sql, arguments)
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        connection.close()
        return _execute(_connection(url), sql, arguments)


def _execute(connection, sql: str, arguments: tuple) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, arguments)
        return cursor.fetchall() if cursor.description else []


def read_ledger(home: Home) -> dict[str, dict]:
    """Ledger entries by landing file name."""
    if url := state_url():
        rows = _query(
            url, f"SELECT entry FROM {TABLE} WHERE home = %s ORDER BY file", (home.location,)
        )
        return {row[0]["file"]: row[0] for row in rows}
    entries = {}
    if synced(home.ledger).is_dir():
        for path in sorted(home.ledger.glob("*.json")):
            entry = json.loads(path.read_text())
            entries[entry["file"]] = entry
    return entries


def read_entry(home: Home, name: str) -> dict | None:
    """The ledger entry of one landing file name, if any."""
    if url := state_url():
        rows = _query(
            url, f"SELECT entry FROM {TABLE} WHERE home = %s AND file = %s", (home.location, name)
        )
        return rows[0][0] if rows else None
    path = synced_file(home.ledger / f"{source_id(name)}.json")
    return json.loads(path.read_text()) if path.exists() else None


def original_of(home: Home, digest: str) -> str | None:
    """The file name under which this content was ingested (not as a duplicate), if any.
    Ingestion asks again under the content's lock before it stores anything (ingestion.py)."""
    if url := state_url():
        rows = _query(
            url,
            f"SELECT file FROM {TABLE} WHERE home = %s AND sha256 = %s AND original",
            (home.location, digest),
        )
        return rows[0][0] if rows else None
    claims = home.ledger / "content"
    if not (claims / ".complete").exists():  # once per home: claim what the ledger holds
        for entry in read_ledger(home).values():
            if _is_original(entry):
                write_json_atomic(claims / f"{entry['sha256']}.json", {"file": entry["file"]})
        claims.mkdir(parents=True, exist_ok=True)
        (claims / ".complete").touch()
    name = _claimant(claims / f"{digest}.json")
    if name is None:
        return None
    entry = read_entry(home, name)  # the claim's file may have changed since: then it is void
    return name if entry and entry.get("sha256") == digest and _is_original(entry) else None


def _claimant(claim: Path) -> str | None:
    return json.loads(claim.read_text())["file"] if synced_file(claim).exists() else None


def remove_claim_temps(home: Home, digest: str) -> None:
    """A claim of this content being written when its ingestion was killed; under its lock."""
    for temp in (home.ledger / "content").glob(f".{digest}.json.*.tmp"):
        temp.unlink(missing_ok=True)


def _is_original(entry: dict) -> bool:
    return bool(entry.get("sha256")) and not entry.get("duplicate_of")


def write_entry(home: Home, entry: dict) -> None:
    """Write a file's entry. In the home, an original's content is claimed first (content/<sha256>
    .json names the file), so that `original_of` is one read; a claim whose entry was never
    written (a kill in between) is void."""
    if url := state_url():
        _query(
            url,
            f"INSERT INTO {TABLE} (home, file, sha256, original, entry) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (home, file) DO UPDATE SET sha256 = EXCLUDED.sha256,"
            " original = EXCLUDED.original, entry = EXCLUDED.entry",
            (
                home.location,
                entry["file"],
                entry.get("sha256"),
                _is_original(entry),
                json.dumps(entry),
            ),
        )
        return
    claim = home.ledger / "content" / f"{entry.get('sha256')}.json"
    if _is_original(entry) and _claimant(claim) != entry["file"]:
        write_json_atomic(claim, {"file": entry["file"]})
    write_json_atomic(home.ledger / f"{entry['source']}.json", entry)


@contextmanager
def lock(home: Home, *keys: str, wait: bool = True) -> Iterator[bool]:
    """Hold the locks named `keys` of this home: one holder at a time, whatever process or machine
    it runs on; a holder that dies releases them. Several are taken in sorted order, so holders
    of several never deadlock. Yields whether they are held (always, when `wait`; else only if
    they were free)."""
    if not keys:
        yield True
        return
    digests = [
        hashlib.sha256(f"{home.location}\0{key}".encode()).digest() for key in sorted(set(keys))
    ]
    if url := state_url():
        connection = connect(url)  # its own session: the locks live as long as it
        try:
            held = True
            with connection.cursor() as cursor:
                for digest in digests:
                    number = int.from_bytes(digest[:8], "big", signed=True)
                    if wait:
                        cursor.execute("SELECT pg_advisory_lock(%s), true", (number,))
                    else:
                        cursor.execute("SELECT pg_try_advisory_lock(%s)", (number,))
                    held = held and bool(cursor.fetchone()[-1])
            yield held
        finally:
            connection.close()  # ends the session, which releases its advisory locks
        return
    with ExitStack() as stack:
        held = True
        for digest in digests:
            path = home.root / ".locks" / f"{digest.hex()[:32]}.lock"
            held = held and stack.enter_context(_file_lock(path, wait))
        yield held


def day_lock(home: Home, days: Iterable[str]) -> AbstractContextManager[bool]:
    """The locks of these days: a day's stored parts and its ledger counts change together under
    its lock, so a reader holding it sees them agree."""
    return lock(home, *(f"day:{day}" for day in days))


@contextmanager
def _file_lock(path: Path, wait: bool) -> Iterator[bool]:
    """An flock on `path`, which is removed on release so that locks do not pile up: a waiter
    that then gets the lock of the removed file sees that the path is gone and tries again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            if _names(path, handle.fileno()):
                try:
                    yield True
                finally:
                    path.unlink(missing_ok=True)
                return


def _names(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def file_version(stat: os.stat_result) -> list[int]:
    """What tells a file version without reading it: size, mtime and ctime (a replaced or
    rewritten file always gets a new ctime, even when size and mtime are made to look the same)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


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
