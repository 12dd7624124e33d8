"""The outbox: what was decided about each incident and what each channel is to be sent, in one
SQLite database under the home (`notifications/outbox.db`) — or, when ALERT_PIPELINE_STATE_URL
names a Postgres database, in a schema of its own there, so that workers on several machines
share it — so that a decision is made once and a message survives crashes, outages and restarts
until it is delivered or dead-lettered.

Three steps, each its own transaction: `record` (the decisions of a run and the events they
send), `fan_out` (an event becomes one message per channel that wants it), and the delivery
states of each message (queued → sending → sent | queued again | dead).
"""

import dataclasses
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alert_pipeline.home import Home
from alert_pipeline.ledger import connect, state_url
from alert_pipeline.notifications.lifecycle import Change, Known
from alert_pipeline.objects import object_home
from alert_pipeline.rules import Incident

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    key TEXT PRIMARY KEY, rule TEXT NOT NULL, group_by TEXT, group_value TEXT,
    incident_id TEXT NOT NULL, partition TEXT NOT NULL, start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL, last_breach_us INTEGER NOT NULL, peak_count INTEGER NOT NULL,
    event_count INTEGER NOT NULL, threshold INTEGER NOT NULL, window_us INTEGER NOT NULL,
    open INTEGER NOT NULL, state TEXT NOT NULL, paged INTEGER NOT NULL, reason TEXT NOT NULL,
    revision INTEGER NOT NULL, decided_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_partition ON incidents (partition);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, revision INTEGER NOT NULL,
    status TEXT NOT NULL, rule TEXT, partition TEXT NOT NULL, body TEXT NOT NULL,
    created_us INTEGER NOT NULL, fanned_out INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER NOT NULL, channel TEXT NOT NULL,
    key TEXT NOT NULL, action TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL,
    next_attempt_us INTEGER NOT NULL, sent_us INTEGER, last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS messages_by_state ON messages (state, next_attempt_us);
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages (channel, key, id);
CREATE TABLE IF NOT EXISTS threads (
    channel TEXT NOT NULL, key TEXT NOT NULL, thread TEXT, resolved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, key)
);
"""
INCIDENT_COLUMNS = [f.name for f in dataclasses.fields(Incident)]
DECISION_COLUMNS = ["key", "open", "state", "paged", "reason", "revision"]


def outbox_path(home: Home) -> Path:
    return home.root / "notifications" / "outbox.db"


def postgres_schema(home: Home) -> str:
    """The outbox's schema in the state database: one per home."""
    return "alert_pipeline_outbox_" + hashlib.sha256(home.location.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Event:
    id: int
    key: str
    revision: int
    status: str  # firing | updated | resolved | withdrawn | digest
    rule: str | None
    partition: str
    body: dict


@dataclass(frozen=True)
class Message:
    id: int
    event: Event
    channel: str
    action: str  # what the channel does: send, or PagerDuty's trigger / resolve
    idempotency_key: str
    attempts: int
    created_us: int


def idempotency_key(channel: str, event_key: str, revision: int) -> str:
    """The same for every retry of one message, different for every other message."""
    return hashlib.sha256(f"{channel}\0{event_key}\0{revision}".encode()).hexdigest()[:32]


class _Postgres:
    """The sqlite3 calls the outbox makes (`?` placeholders, cursors), on a Postgres schema."""

    def __init__(self, url: str, schema: str) -> None:
        self.connection = connect(url)
        self.lock_number = int(schema[-15:], 16)
        ddl = SCHEMA.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        ddl = ddl.replace("INTEGER", "BIGINT")
        self.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self.lock_number})")
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}")
        self.execute(ddl + "; COMMIT")

    def execute(self, sql: str, parameters: Iterable = ()):
        cursor = self.connection.cursor()
        cursor.execute(sql.replace("?", "%s"), [_plain(p) for p in parameters])
        return cursor

    def executemany(self, sql: str, rows: Iterable[Iterable]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), [[_plain(p) for p in r] for r in rows])

    def close(self) -> None:
        self.connection.close()


def _plain(value: object) -> object:
    """Flags are stored as 0 / 1 in either database."""
    return int(value) if isinstance(value, bool) else value


class Outbox:
    """One connection to the outbox (SQLite in WAL mode, where readers never wait for the
    deliverer; or Postgres). Writes are transactions one at a time, as SQLite's `BEGIN
    IMMEDIATE` makes them, and in Postgres a transaction-level advisory lock."""

    def __init__(self, home: Home) -> None:
        self.store = None
        if url := state_url():
            self.db = _Postgres(url, postgres_schema(home))
            self.begin = f"BEGIN; SELECT pg_advisory_xact_lock({self.db.lock_number})"
            return
        self.path = outbox_path(home)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # In an object store, the outbox is uploaded after each change; a new cache starts from
        # that copy. The local file stays the one that counts (the processes of one machine share
        # it): machines sharing such a home share a Postgres outbox instead.
        self.store = object_home(self.path)
        if self.store and not self.path.exists():
            self.store.fetch(self.path)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.begin = "BEGIN IMMEDIATE"

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute(self.begin)
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        if self.store:
            self._upload()

    def _upload(self) -> None:
        """A consistent copy of the SQLite outbox, as its object."""
        snapshot = self.path.with_name(f".outbox.{os.getpid()}.{id(self)}.tmp")
        try:
            self.db.execute("VACUUM INTO ?", (str(snapshot),))
            self.store.upload(snapshot, self.path)
        finally:
            snapshot.unlink(missing_ok=True)

    # --- decisions --------------------------------------------------------------------------

    def known(self, partitions: Iterable[str]) -> list[Known]:
        days = sorted(set(partitions))
        if not days:
            return []
        columns = [*INCIDENT_COLUMNS, *DECISION_COLUMNS]
        rows = self.db.execute(
            f"SELECT {', '.join(_column(c) for c in columns)} FROM incidents "
            f"WHERE partition IN ({', '.join('?' * len(days))})",
            days,
        ).fetchall()
        known = []
        for row in rows:
            incident = Incident(*row[: len(INCIDENT_COLUMNS)])
            key, is_open, state, paged, reason, revision = row[len(INCIDENT_COLUMNS) :]
            known.append(Known(key, incident, bool(is_open), state, bool(paged), reason, revision))
        return known

    def record(
        self, changes: list[Change], events: list[tuple[Known | None, str, dict]], now_us: int
    ):
        """Store the decisions and the events they send, in one transaction."""
        with self.transaction() as db:
            for change in changes:
                k = change.known
                row = dataclasses.asdict(k.incident) | {
                    name: getattr(k, name) for name in DECISION_COLUMNS
                }
                row |= {"incident_id": k.incident.incident_id, "partition": k.partition}
                columns = [*(_column(c) for c in row), "decided_us"]
                db.execute(
                    f"INSERT INTO incidents ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))}) ON CONFLICT (key) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in columns if c != "key"),
                    [*row.values(), now_us],
                )
            for known, status, body in events:
                key = known.key if known else body["key"]
                db.execute(
                    "INSERT INTO events (key, revision, status, rule, partition, body, created_us)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        known.revision if known else 0,
                        status,
                        known.incident.rule if known else None,
                        known.partition if known else body["partition"],
                        json.dumps(body, sort_keys=True),
                        now_us,
                    ),
                )

    # --- fan-out ----------------------------------------------------------------------------

    def unfanned(self) -> list[Event]:
        rows = self.db.execute(
            "SELECT id, key, revision, status, rule, partition, body FROM events "
            "WHERE fanned_out = 0 ORDER BY id"
        ).fetchall()
        return [Event(*row[:6], json.loads(row[6])) for row in rows]

    def resolved(self, channel: str, key: str) -> bool:
        row = self.db.execute(
            "SELECT resolved FROM threads WHERE channel = ? AND key = ?", (channel, key)
        ).fetchone()
        return bool(row and row[0])

    def fan_out(self, event: Event, messages: list[tuple[str, str]], now_us: int) -> None:
        """Queue the event's messages, (channel, action) each; a `resolve` marks the channel's
        thread of the incident resolved (PagerDuty is never triggered again for it)."""
        with self.transaction() as db:
            for channel, action in messages:
                db.execute(
                    "INSERT INTO messages (event_id, channel, key, action, "
                    "idempotency_key, state, created_us, next_attempt_us) "
                    "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT DO NOTHING",
                    (
                        event.id,
                        channel,
                        event.key,
                        action,
                        idempotency_key(channel, event.key, event.revision),
                        now_us,
                        now_us,
                    ),
                )
                if action == "resolve":
                    db.execute(
                        "INSERT INTO threads (channel, key, resolved) VALUES (?, ?, 1) "
                        "ON CONFLICT (channel, key) DO UPDATE SET resolved = 1",
                        (channel, event.key),
                    )
            db.execute("UPDATE events SET fanned_out = 1 WHERE id = ?", (event.id,))

    # --- delivery ---------------------------------------------------------------------------

    def requeue_sending(self) -> int:
        """Messages a deliverer claimed and never settled (it died): send them again."""
        return self.db.execute(
            "UPDATE messages SET state = 'queued' WHERE state = 'sending'"
        ).rowcount

    def claim_due(self, now_us: int, limit: int, skip: set[int] = frozenset()) -> list[Message]:
        """Claim the due messages (but those in `skip`), at most one per channel and incident:
        an incident's messages go in order."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT m.id, m.channel, m.action, m.idempotency_key, m.attempts, m.created_us, "
                "e.id, e.key, e.revision, e.status, e.rule, e.partition, e.body "
                "FROM messages m JOIN events e ON e.id = m.event_id "
                "WHERE m.state = 'queued' AND m.next_attempt_us <= ? AND m.id = ("
                "  SELECT min(id) FROM messages o WHERE o.channel = m.channel AND o.key = m.key"
                f"  AND o.state IN ('queued', 'sending')) {_skipping(skip)} "
                "ORDER BY m.id LIMIT ?",
                (now_us, limit),
            ).fetchall()
            db.executemany(
                "UPDATE messages SET state = 'sending' WHERE id = ?", [(r[0],) for r in rows]
            )
        return [
            Message(r[0], Event(r[6], r[7], r[8], r[9], r[10], r[11], json.loads(r[12])), *r[1:6])
            for r in rows
        ]

    def settle(self, results: list[tuple[Message, str, int, str, str | None]], now_us: int):
        """Store the outcome of sends: (message, sent | retry | dead, next attempt µs, error,
        thread id the channel returned)."""
        with self.transaction() as db:
            for message, outcome, next_us, error, thread in results:
                if outcome == "sent":
                    db.execute(
                        "UPDATE messages SET state = 'sent', sent_us = ?, attempts = attempts + 1,"
                        " last_error = '' WHERE id = ?",
                        (now_us, message.id),
                    )
                    if thread:
                        db.execute(
                            "INSERT INTO threads (channel, key, thread) VALUES (?, ?, ?) "
                            "ON CONFLICT (channel, key) DO UPDATE SET thread = "
                            "coalesce(threads.thread, excluded.thread)",
                            (message.channel, message.event.key, thread),
                        )
                else:
                    db.execute(
                        "UPDATE messages SET state = ?, attempts = attempts + 1, "
                        "next_attempt_us = ?, last_error = ? WHERE id = ?",
                        ("queued" if outcome == "retry" else "dead", next_us, error, message.id),
                    )

    def thread(self, channel: str, key: str) -> str | None:
        row = self.db.execute(
            "SELECT thread FROM threads WHERE channel = ? AND key = ?", (channel, key)
        ).fetchone()
        return row[0] if row else None

    # --- what to show -----------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """Messages by channel and state."""
        counts: dict[str, dict[str, int]] = {}
        for channel, state, n in self.db.execute(
            "SELECT channel, state, count(*) FROM messages GROUP BY channel, state"
        ):
            counts.setdefault(channel, {})[state] = n
        return counts

    def settled_since(self, since_us: int) -> tuple[int, int]:
        """Messages sent, and messages dead-lettered, since `since_us`."""
        sent, dead = self.db.execute(
            "SELECT count(*) FILTER (WHERE state = 'sent' AND sent_us >= ?), "
            "count(*) FILTER (WHERE state = 'dead' AND next_attempt_us >= ?) FROM messages",
            (since_us, since_us),
        ).fetchone()
        return sent, dead

    def requeue_dead(self, now_us: int) -> int:
        """Dead letters go back to the queue (a channel was fixed): tried again at once."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE messages SET state = 'queued', created_us = ?, next_attempt_us = ?, "
                "attempts = 0 WHERE state = 'dead'",
                (now_us, now_us),
            ).rowcount

    def drop_dead(self) -> int:
        """Dead letters are dropped (someone dealt with them): they no longer fail the check."""
        with self.transaction() as db:
            return db.execute("UPDATE messages SET state = 'dropped' WHERE state = 'dead'").rowcount

    def next_attempt_us(self, skip: set[int] = frozenset()) -> int | None:
        return self.db.execute(
            f"SELECT min(next_attempt_us) FROM messages m WHERE state = 'queued' {_skipping(skip)}"
        ).fetchone()[0]

    def dead_letters(self, partitions: Iterable[str] | None = None) -> list[dict]:
        query = (
            "SELECT m.channel, m.key, e.status, e.partition, m.attempts, m.last_error, m.id "
            "FROM messages m JOIN events e ON e.id = m.event_id WHERE m.state = 'dead'"
        )
        rows = self.db.execute(query + " ORDER BY m.id").fetchall()
        wanted = None if partitions is None else set(partitions)
        names = ["channel", "incident", "status", "partition", "attempts", "error", "id"]
        return [
            dict(zip(names, row, strict=True)) for row in rows if wanted is None or row[3] in wanted
        ]

    def day(self, partition: str) -> dict:
        """What a day's report shows: its incidents' notification states, and dead letters."""
        incidents = {
            key: {"state": state, "paged": bool(paged), "reason": reason, "revision": revision}
            for key, state, paged, reason, revision in self.db.execute(
                "SELECT key, state, paged, reason, revision FROM incidents WHERE partition = ? "
                "ORDER BY key",
                (partition,),
            )
        }
        dead = [
            {k: v for k, v in d.items() if k not in ("partition", "id")}
            for d in self.dead_letters([partition])
        ]
        return {"incidents": incidents, "dead_letters": dead}


def _skipping(ids: set[int]) -> str:
    return f"AND m.id NOT IN ({', '.join(str(int(i)) for i in ids)})" if ids else ""


def _column(name: str) -> str:
    return "group_value" if name == "group" else name


def day_summaries(home: Home, days: Iterable[str]) -> dict[str, dict]:
    """`Outbox.day` of the days that have anything to show (no outbox: nothing)."""
    if not state_url() and not object_home(home.root) and not outbox_path(home).exists():
        return {}
    with open_outbox(home) as outbox:
        summaries = {day: outbox.day(day) for day in days}
    return {day: s for day, s in summaries.items() if s["incidents"] or s["dead_letters"]}


@contextmanager
def open_outbox(home: Home) -> Iterator[Outbox]:
    outbox = Outbox(home)
    try:
        yield outbox
    finally:
        outbox.close()
