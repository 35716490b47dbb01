"""Streamed events (PutEvents) and item / user metadata (PutItems / PutUsers), in an embedded SQLite file.

Durability. The file is in WAL mode with `synchronous=FULL` (the default here): every committed
transaction's WAL frames are fsync'ed before `COMMIT` returns, and the HTTP handlers commit before they
answer, so an event that was acknowledged survives a `kill -9` of the server *and* a power loss or OS
crash. `synchronous=NORMAL` in WAL mode syncs only at checkpoints: it survives a process crash but may
lose the last transactions on power loss, which breaks "nothing acknowledged is lost"; it is allowed
(`events_synchronous: NORMAL`) for those who accept that for fewer fsyncs. The cost of FULL is one fsync
per PutEvents call (up to 10 events share one transaction).

Concurrency. One writer connection behind a lock (SQLite allows one writer at a time anyway; `BEGIN
IMMEDIATE` takes the write lock up front, so a second process waits up to `timeout` instead of failing
mid-transaction). Reads use one connection per thread (WAL readers do not block the writer nor each
other), so uvicorn's worker threads read while an fsync is in flight. An in-memory store (`:memory:`,
for tests) is a single connection: reads take the lock too.

Safety. Every statement is parameterized: ids, properties and ARNs are bound values, never SQL text.

Users and sessions, as Personalize: an event always has a `sessionId` and may have a `userId`. A user's
events are those with their userId, plus the anonymous events (no userId) of any session they have used,
plus the events of a session whose id is asked for as a userId (how anonymous visitors get
recommendations: their sessionId is the userId of GetRecommendations).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from personalize_torch.data.event_properties import field_name, property_fields  # noqa: F401 (re-exported)

SCHEMA_VERSION = 1
SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")
MAX_EVENTS_PER_USER = 1000  # newest events read per GetRecommendations (exclusion and model input)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order; a watermark for training on the store
    tracking_id TEXT NOT NULL,
    user_id TEXT,                           -- NULL for anonymous events
    session_id TEXT NOT NULL,
    event_id TEXT,
    event_type TEXT NOT NULL,
    event_value REAL,
    item_id TEXT,
    sent_at REAL NOT NULL,                  -- epoch seconds
    impression TEXT,                        -- JSON array of item ids
    recommendation_id TEXT,
    properties TEXT,                        -- the JSON object text, as sent
    metric_attribution TEXT,                -- metricAttribution.eventAttributionSource
    received_at REAL NOT NULL               -- epoch seconds
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, sent_at);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id, sent_at);
CREATE TABLE IF NOT EXISTS items (
    dataset_arn TEXT NOT NULL,
    item_id TEXT NOT NULL,
    properties TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (dataset_arn, item_id)
);
CREATE TABLE IF NOT EXISTS users (
    dataset_arn TEXT NOT NULL,
    user_id TEXT NOT NULL,
    properties TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (dataset_arn, user_id)
);
"""

# A user's events: their own, the anonymous events of sessions they used, and those of a session asked for
# by its id (bound parameter :u).
_USER_EVENTS = ("FROM events WHERE user_id = :u OR session_id = :u "
                "OR (user_id IS NULL AND session_id IN (SELECT session_id FROM events WHERE user_id = :u)) "
                "ORDER BY sent_at DESC, seq DESC LIMIT :n")
_EVENT_COLUMNS = ("seq, tracking_id, user_id, session_id, event_id, event_type, event_value, item_id, sent_at, "
                  "impression, recommendation_id, properties, metric_attribution, received_at")


@dataclass(frozen=True)
class Event:
    """One event of a PutEvents call (botocore's Event shape, snake_case)."""

    event_type: str
    sent_at: float  # epoch seconds
    item_id: str | None = None
    event_id: str | None = None
    event_value: float | None = None
    properties: str | None = None  # a JSON object, as text
    impression: tuple[str, ...] | None = None
    recommendation_id: str | None = None
    metric_attribution: str | None = None  # eventAttributionSource


@dataclass(frozen=True)
class StoredEvent(Event):
    seq: int = 0
    tracking_id: str = ""
    user_id: str | None = None
    session_id: str = ""
    received_at: float = 0.0


@dataclass
class UserEventColumns:
    """What scoring needs of a user's events, as columns, oldest first (cheap to build per request)."""

    item_ids: list[str | None]
    sent_at: list[float]
    event_types: list[str]
    event_values: list[float | None]
    properties: list[str | None]

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class MetadataRow:
    """One PutItems / PutUsers row: an item or user id and its properties (JSON object text)."""

    dataset_arn: str
    id: str
    properties: str | None
    updated_at: float


def _stored(row: tuple) -> StoredEvent:
    (seq, tracking_id, user_id, session_id, event_id, event_type, event_value, item_id, sent_at, impression,
     recommendation_id, properties, metric_attribution, received_at) = row
    return StoredEvent(event_type=event_type, sent_at=sent_at, item_id=item_id, event_id=event_id,
                       event_value=event_value, properties=properties,
                       impression=tuple(json.loads(impression)) if impression is not None else None,
                       recommendation_id=recommendation_id, metric_attribution=metric_attribution, seq=seq,
                       tracking_id=tracking_id, user_id=user_id, session_id=session_id, received_at=received_at)


class EventStore:
    """The events database: `EventStore("events.sqlite")`, or `EventStore(":memory:")` for tests."""

    def __init__(self, path: str | Path = ":memory:", synchronous: str = "FULL", timeout: float = 30.0):
        self.path = str(path)
        self.synchronous = str(synchronous).upper()
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}")
        self.timeout = timeout
        self.in_memory = self.path == ":memory:"
        if not self.in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = self._connect()
        mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if not self.in_memory and str(mode).lower() != "wal":
            raise RuntimeError(f"{self.path}: could not switch to WAL mode (journal_mode={mode})")
        self._writer.executescript(_SCHEMA)
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self._writer.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: events database schema version {version}, expected {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE / COMMIT.
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous={self.synchronous}")  # one of SYNCHRONOUS_MODES, checked above
        return conn

    # --- connections -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the event store is closed")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and, with FULL, fsync'ed) when the block ends."""
        with self._lock:
            self._check_open()
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def _query(self, sql: str, params: Sequence | dict = ()) -> list[tuple]:
        if self.in_memory:
            with self._lock:
                self._check_open()
                return self._writer.execute(sql, params).fetchall()
        self._check_open()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            with self._lock:
                self._check_open()
                self._readers.append(conn)
            self._local.conn = conn
        return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._readers:
                conn.close()
            self._writer.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writes ----------------------------------------------------------------------------------
    def put_events(self, tracking_id: str, session_id: str, user_id: str | None, events: Sequence[Event]) -> list[int]:
        """Store one PutEvents call's events in one transaction; returns their sequence numbers. When
        this returns, the events are committed (and durable, with synchronous FULL)."""
        now = time.time()
        rows = [(tracking_id, user_id, session_id, e.event_id, e.event_type, e.event_value, e.item_id,
                 float(e.sent_at), json.dumps(list(e.impression)) if e.impression is not None else None,
                 e.recommendation_id, e.properties, e.metric_attribution, now) for e in events]
        with self._write() as conn:
            seqs = [conn.execute(
                "INSERT INTO events (tracking_id, user_id, session_id, event_id, event_type, event_value, item_id, "
                "sent_at, impression, recommendation_id, properties, metric_attribution, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row).lastrowid for row in rows]
        return seqs

    def _put_metadata(self, table: str, key: str, dataset_arn: str, rows: Sequence[tuple[str, str | None]]) -> None:
        assert (table, key) in (("items", "item_id"), ("users", "user_id"))  # fixed names, never user input
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                f"INSERT INTO {table} (dataset_arn, {key}, properties, updated_at) VALUES (?, ?, ?, ?) "
                f"ON CONFLICT (dataset_arn, {key}) DO UPDATE SET properties = excluded.properties, "
                "updated_at = excluded.updated_at",
                [(dataset_arn, id_, properties, now) for id_, properties in rows])

    def put_items(self, dataset_arn: str, items: Sequence[tuple[str, str | None]]) -> None:
        """PutItems: add or replace (itemId, properties JSON) rows of an Items dataset."""
        self._put_metadata("items", "item_id", dataset_arn, items)

    def put_users(self, dataset_arn: str, users: Sequence[tuple[str, str | None]]) -> None:
        """PutUsers: add or replace (userId, properties JSON) rows of a Users dataset."""
        self._put_metadata("users", "user_id", dataset_arn, users)

    # --- reads -----------------------------------------------------------------------------------
    def user_events(self, user_id: str, limit: int = MAX_EVENTS_PER_USER) -> list[StoredEvent]:
        """The newest `limit` events of a user (or of a session asked for as a userId), oldest first
        (by sentAt, then arrival)."""
        rows = self._query(f"SELECT {_EVENT_COLUMNS} {_USER_EVENTS}", {"u": user_id, "n": int(limit)})
        return [_stored(r) for r in reversed(rows)]

    def user_event_columns(self, user_id: str, limit: int = MAX_EVENTS_PER_USER) -> UserEventColumns:
        """`user_events`, only the columns scoring reads (item, sentAt, eventType, eventValue, properties)."""
        rows = self._query(f"SELECT item_id, sent_at, event_type, event_value, properties {_USER_EVENTS}",
                           {"u": user_id, "n": int(limit)})
        rows.reverse()
        return UserEventColumns(*(list(column) for column in zip(*rows))) if rows else \
            UserEventColumns([], [], [], [], [])

    def events(self, after_seq: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Events in arrival order with seq > `after_seq` (for exports and training on the store)."""
        rows = self._query(f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                           (int(after_seq), -1 if limit is None else int(limit)))
        return [_stored(r) for r in rows]

    def count_events(self) -> int:
        return self._query("SELECT COUNT(*) FROM events")[0][0]

    def _metadata(self, table: str, key: str, dataset_arn: str | None) -> list[MetadataRow]:
        assert (table, key) in (("items", "item_id"), ("users", "user_id"))
        where, params = ("WHERE dataset_arn = ?", (dataset_arn,)) if dataset_arn is not None else ("", ())
        rows = self._query(f"SELECT dataset_arn, {key}, properties, updated_at FROM {table} {where} "
                           f"ORDER BY dataset_arn, {key}", params)
        return [MetadataRow(*r) for r in rows]

    def items(self, dataset_arn: str | None = None) -> list[MetadataRow]:
        """PutItems rows (latest properties of each item), of one Items dataset or all."""
        return self._metadata("items", "item_id", dataset_arn)

    def users(self, dataset_arn: str | None = None) -> list[MetadataRow]:
        """PutUsers rows (latest properties of each user), of one Users dataset or all."""
        return self._metadata("users", "user_id", dataset_arn)
