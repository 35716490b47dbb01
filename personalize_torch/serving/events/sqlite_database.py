"""The embedded backend of the event store and the deployment log: one SQLite file (or ":memory:").

Durability. The file is in WAL mode with `synchronous=FULL` (the default here): every committed
transaction's WAL frames are fsync'ed before `COMMIT` returns, so what a write committed survives a
`kill -9` of the server *and* a power loss or OS crash. `synchronous=NORMAL` in WAL mode syncs only at
checkpoints: it survives a process crash but may lose the last transactions on power loss.

Concurrency. One writer connection behind a lock (SQLite allows one writer at a time anyway; `BEGIN
IMMEDIATE` takes the write lock up front, so a second process waits up to `timeout` instead of failing
mid-transaction). Reads take a connection from a small pool (WAL readers do not block the writer nor each
other), so a server's threads read while an fsync is in flight; the pool keeps at most `MAX_IDLE_READERS`
between reads, whatever the number of threads that come and go (a server's thread pool ends idle threads
and starts new ones: a connection per thread would pile up, each with its file handles and page cache).
An in-memory database (`:memory:`, for tests) is a single connection: reads take the lock too.

Faults. A write that SQLite refuses (the disk full, the file read-only, its write lock held by another
process past `timeout`, an I/O error) is rolled back and raised as `DatabaseUnavailable`; the writer
connection is left outside any transaction, so the next write, once space returns, goes through with no
restart. SQLite already rolls back by itself after some of those errors (a full disk at COMMIT): the
rollback here happens only when a transaction is still open.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from personalize_torch.serving.events.database import DatabaseUnavailable, Dialect

SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")
MAX_IDLE_READERS = 8   # reader connections kept open between reads (more are opened while more threads read)


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
        self._lock = threading.Lock()          # the writer connection (and, in memory, the only one)
        self._pool_lock = threading.Lock()     # `_idle_readers`; never held during a statement
        self._idle_readers: list[sqlite3.Connection] = []
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
            raise DatabaseUnavailable("the events database is closed")

    @contextmanager
    def write(self) -> Iterator[SQLiteTransaction]:
        """One write transaction, committed (and, with FULL, fsync'ed) when the block ends."""
        with self._lock:
            self._check_open()
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    yield SQLiteTransaction(self._writer)
                    self._writer.execute("COMMIT")
                except BaseException:
                    if self._writer.in_transaction:   # not already rolled back by SQLite itself
                        self._writer.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as err:
                raise DatabaseUnavailable(str(err)) from err

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            if self.in_memory:
                with self._lock:
                    self._check_open()
                    return self._writer.execute(sql, params).fetchall()
            with self._reader() as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as err:
            raise DatabaseUnavailable(str(err)) from err

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """An idle reader connection (the one used last: its page cache is warm) or a new one; back to the
        pool afterwards, or closed when `MAX_IDLE_READERS` are idle already (or the database was closed)."""
        with self._pool_lock:
            self._check_open()
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
        try:
            yield conn
        finally:
            with self._pool_lock:
                keep = not self._closed and len(self._idle_readers) < MAX_IDLE_READERS
                if keep:
                    self._idle_readers.append(conn)
            if not keep:
                conn.close()

    def close(self) -> None:
        with self._lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._idle_readers:
                conn.close()
            self._idle_readers.clear()
            self._writer.close()
