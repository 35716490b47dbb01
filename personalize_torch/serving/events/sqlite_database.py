"""The embedded backend of the event store and the deployment log: one SQLite file (or ":memory:").

Durability. The file is in WAL mode with `synchronous=FULL` (the default here): every committed
transaction's WAL frames are fsync'ed before `COMMIT` returns, so what a write committed survives a
`kill -9` of the server *and* a power loss or OS crash. `synchronous=NORMAL` in WAL mode syncs only at
checkpoints: it survives a process crash but may lose the last transactions on power loss.

Concurrency. One writer connection behind a lock (SQLite allows one writer at a time anyway; `BEGIN
IMMEDIATE` takes the write lock up front, so a second process waits up to `timeout` instead of failing
mid-transaction). Reads use one connection per thread (WAL readers do not block the writer nor each
other), so a server's threads read while an fsync is in flight. An in-memory database (`:memory:`, for
tests) is a single connection: reads take the lock too.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from personalize_torch.serving.events.database import Dialect

SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")


class SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        self._conn.executemany(sql, rows)


class SQLiteDatabase:
    """`SQLiteDatabase("events.sqlite")`, or `SQLiteDatabase(":memory:")`."""

    dialect: Dialect = "sqlite"

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

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE / COMMIT.
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous={self.synchronous}")  # one of SYNCHRONOUS_MODES, checked above
        return conn

    def apply_schema(self, ddl: str, version: int | None = None) -> None:
        with self._lock:
            self._check_open()
            self._writer.executescript(ddl)
            if version is None:
                return
            found = self._writer.execute("PRAGMA user_version").fetchone()[0]
            if found == 0:
                self._writer.execute(f"PRAGMA user_version={int(version)}")
            elif found != version:
                raise RuntimeError(f"{self.path}: events database schema version {found}, expected {version}")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the events database is closed")

    @contextmanager
    def write(self) -> Iterator[SQLiteTransaction]:
        """One write transaction, committed (and, with FULL, fsync'ed) when the block ends."""
        with self._lock:
            self._check_open()
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield SQLiteTransaction(self._writer)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
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
