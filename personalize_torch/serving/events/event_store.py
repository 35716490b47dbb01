"""Streamed events (PutEvents) and item / user metadata (PutItems / PutUsers), in the events database:
an embedded SQLite file (the default) or a PostgreSQL database that several serving hosts share
(`events_db`, see `store_url`).

Durability. Every call is one transaction, committed before the call returns, and the HTTP handlers
answer after it: an acknowledged event survives a `kill -9` of the server. With `synchronous=FULL` (the
default) it survives a power loss too: SQLite fsyncs its WAL at every commit, PostgreSQL flushes the
commit record before it answers. `NORMAL` (`events_synchronous: NORMAL`) trades that for fewer disk
syncs: SQLite may lose the last transactions on power loss, PostgreSQL on a crash of its own machine.
The cost of FULL is one disk sync per PutEvents call (up to 10 events share one transaction).

Concurrency. Writes are serialized (one at a time per database, across processes and hosts), so
sequence numbers are committed in increasing order: `events(after_seq)` is a watermark that misses
nothing. Readers never wait for the writer. See `sqlite_database` and `postgres_database`.

Safety. Every statement is parameterized: ids, properties and ARNs are bound values, never SQL text.

Users and sessions, as Personalize: an event always has a `sessionId` and may have a `userId`. A user's
events are those with their userId, plus the anonymous events (no userId) of any session they have used,
plus the events of a session whose id is asked for as a userId (how anonymous visitors get
recommendations: their sessionId is the userId of GetRecommendations).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from personalize_torch.data.event_properties import field_name, property_fields  # noqa: F401 (re-exported)
from personalize_torch.serving.events.database import Database
from personalize_torch.serving.events.sqlite_database import SYNCHRONOUS_MODES  # noqa: F401 (re-exported)
from personalize_torch.serving.events.store_url import open_database

SCHEMA_VERSION = 1
MAX_EVENTS_PER_USER = 1000  # newest events read per GetRecommendations (exclusion and model input)

_SQLITE_SCHEMA = """
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

# The same tables in PostgreSQL (whose REAL has 4 bytes: epoch seconds need DOUBLE PRECISION).
_POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tracking_id TEXT NOT NULL,
    user_id TEXT,
    session_id TEXT NOT NULL,
    event_id TEXT,
    event_type TEXT NOT NULL,
    event_value DOUBLE PRECISION,
    item_id TEXT,
    sent_at DOUBLE PRECISION NOT NULL,
    impression TEXT,
    recommendation_id TEXT,
    properties TEXT,
    metric_attribution TEXT,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, sent_at);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id, sent_at);
CREATE TABLE IF NOT EXISTS items (
    dataset_arn TEXT NOT NULL,
    item_id TEXT NOT NULL,
    properties TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (dataset_arn, item_id)
);
CREATE TABLE IF NOT EXISTS users (
    dataset_arn TEXT NOT NULL,
    user_id TEXT NOT NULL,
    properties TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (dataset_arn, user_id)
);
"""
_SCHEMAS = {"sqlite": _SQLITE_SCHEMA, "postgresql": _POSTGRES_SCHEMA}

_EVENT_COLUMNS = ("seq, tracking_id, user_id, session_id, event_id, event_type, event_value, item_id, sent_at, "
                  "impression, recommendation_id, properties, metric_attribution, received_at")
_INSERT_EVENT = ("INSERT INTO events (tracking_id, user_id, session_id, event_id, event_type, event_value, item_id, "
                 "sent_at, impression, recommendation_id, properties, metric_attribution, received_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq")


def _user_events_sql(columns: str) -> str:
    """A user's newest events: their own, those of a session asked for by its id, and the anonymous events
    of sessions they used. Parameters: the user id three times, then the limit. Three indexed look-ups:
    written as one `OR`, both SQLite and PostgreSQL read every anonymous event of the store (`user_id IS
    NULL` through the user index), milliseconds per request once there are many."""
    return (f"SELECT {columns} FROM events WHERE seq IN ("
            "SELECT seq FROM events WHERE user_id = ? "
            "UNION ALL SELECT seq FROM events WHERE session_id = ? "
            "UNION ALL SELECT e.seq FROM (SELECT DISTINCT session_id FROM events WHERE user_id = ?) s "
            "JOIN events e ON e.session_id = s.session_id WHERE e.user_id IS NULL) "
            "ORDER BY sent_at DESC, seq DESC LIMIT ?")


_USER_EVENTS = _user_events_sql(_EVENT_COLUMNS)
_USER_EVENT_COLUMNS = _user_events_sql("item_id, sent_at, event_type, event_value, properties")


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
    """The events database: `EventStore("events.sqlite")`, `EventStore("postgresql://user:pw@host/db")`,
    or `EventStore(":memory:")` for tests (`location`: see `store_url`)."""

    def __init__(self, location: str | Path = ":memory:", synchronous: str = "FULL", timeout: float = 30.0):
        self.location = str(location)
        self._db: Database = open_database(location, synchronous=synchronous, timeout=timeout)
        self.in_memory = self._db.in_memory
        try:
            self._db.apply_schema(_SCHEMAS[self._db.dialect], version=SCHEMA_VERSION)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

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
        with self._db.write() as tx:
            seqs = [int(tx.execute(_INSERT_EVENT, row)[0][0]) for row in rows]
        return seqs

    def _put_metadata(self, table: str, key: str, dataset_arn: str, rows: Sequence[tuple[str, str | None]]) -> None:
        assert (table, key) in (("items", "item_id"), ("users", "user_id"))  # fixed names, never user input
        now = time.time()
        with self._db.write() as tx:
            tx.executemany(
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
        rows = self._db.query(_USER_EVENTS, (user_id, user_id, user_id, int(limit)))
        return [_stored(r) for r in reversed(rows)]

    def user_event_columns(self, user_id: str, limit: int = MAX_EVENTS_PER_USER) -> UserEventColumns:
        """`user_events`, only the columns scoring reads (item, sentAt, eventType, eventValue, properties)."""
        rows = self._db.query(_USER_EVENT_COLUMNS, (user_id, user_id, user_id, int(limit)))
        rows.reverse()
        return UserEventColumns(*(list(column) for column in zip(*rows))) if rows else \
            UserEventColumns([], [], [], [], [])

    def events(self, after_seq: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Events in arrival order with seq > `after_seq` (for exports and training on the store)."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq"
        if limit is None:
            return [_stored(r) for r in self._db.query(sql, (int(after_seq),))]
        return [_stored(r) for r in self._db.query(sql + " LIMIT ?", (int(after_seq), int(limit)))]

    def count_events(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM events")[0][0])

    def _metadata(self, table: str, key: str, dataset_arn: str | None) -> list[MetadataRow]:
        assert (table, key) in (("items", "item_id"), ("users", "user_id"))
        where, params = ("WHERE dataset_arn = ?", (dataset_arn,)) if dataset_arn is not None else ("", ())
        rows = self._db.query(f"SELECT dataset_arn, {key}, properties, updated_at FROM {table} {where} "
                              f"ORDER BY dataset_arn, {key}", params)
        return [MetadataRow(*r) for r in rows]

    def items(self, dataset_arn: str | None = None) -> list[MetadataRow]:
        """PutItems rows (latest properties of each item), of one Items dataset or all."""
        return self._metadata("items", "item_id", dataset_arn)

    def user_properties(self, user_id: str) -> str | None:
        """The latest PutUsers properties (JSON object text) of `user_id`, of any Users dataset; None when none."""
        rows = self._db.query("SELECT properties FROM users WHERE user_id = ? ORDER BY updated_at DESC LIMIT 1",
                              (user_id,))
        return rows[0][0] if rows else None

    def users(self, dataset_arn: str | None = None) -> list[MetadataRow]:
        """PutUsers rows (latest properties of each user), of one Users dataset or all."""
        return self._metadata("users", "user_id", dataset_arn)
