"""The shared backend of the event store and the deployment log: a PostgreSQL database that several
serving hosts use at once (psycopg 3: `pip install 'personalize-torch[postgres]'`).

Durability. A write returns after PostgreSQL committed it: with `synchronous=FULL` (the default; EXTRA
is the same here) the session's `synchronous_commit` is `on`, so the commit record is flushed to the
server's disk before the commit returns, and an acknowledged event survives a crash of the serving host,
of PostgreSQL and of its machine (given the server's own `fsync=on`). `NORMAL` sets `synchronous_commit`
to `off`: a crash of a serving host loses nothing, a crash of PostgreSQL's machine may lose the last
fraction of a second of writes.

Concurrency. One writer connection per process behind a lock; every write transaction first takes one
transaction-level advisory lock (`WRITE_LOCK`), so writes are serialized across processes and hosts as
SQLite serializes them, and numbers handed out in a write are committed in increasing order (see
`database`). A writer waits at most `timeout` for that lock; a transaction left open by a host that went
away is ended by the server after a minute (`idle_in_transaction_session_timeout`). Reads come from a
small pool of autocommit connections (`max_readers` per process; readers never wait for the writer).
A connection that breaks (PostgreSQL restarted) is replaced: a read is tried again once on a new one;
a write fails (the caller answers with an error and the client may retry it) and the next one reconnects.

Faults. What PostgreSQL refuses for want of a resource (its disk full, the write lock not had within
`timeout`, the connection lost or refused) is rolled back and raised as `DatabaseUnavailable`, with the
SQLSTATE as the reason a client sees (the full error, host included, stays in the chained exception).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from psycopg.conninfo import conninfo_to_dict

from personalize_torch.serving.events.database import DatabaseUnavailable, Dialect
from personalize_torch.serving.events.sqlite_database import SYNCHRONOUS_MODES

# pg_advisory_xact_lock's key for every write of the event store and the deployment log ("pt-write").
WRITE_LOCK = 0x70742D7772697465
SYNCHRONOUS_COMMIT = {"NORMAL": "off", "FULL": "on", "EXTRA": "on"}


def unavailable(err: psycopg.OperationalError) -> DatabaseUnavailable:
    """`err` as a DatabaseUnavailable whose reason names its class of error, not the server's address."""
    if err.sqlstate is None:
        return DatabaseUnavailable("the connection to PostgreSQL failed")
    return DatabaseUnavailable(f"PostgreSQL error {err.sqlstate} ({type(err).__name__})")


@lru_cache(maxsize=256)
def pyformat(sql: str) -> str:
    """A qmark (`?`) statement in psycopg's placeholders (`%s`). The statements are the stores' own
    constants, none with a literal `?` or `%`."""
    if "%" in sql:
        raise ValueError(f"a statement with a literal '%': {sql}")
    return sql.replace("?", "%s")


class PostgresTransaction:
    def __init__(self, cur: psycopg.Cursor):
        self._cur = cur

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        self._cur.execute(pyformat(sql), params)
        return self._cur.fetchall() if self._cur.description is not None else []

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        self._cur.executemany(pyformat(sql), rows)


class PostgresDatabase:
    """`PostgresDatabase("postgresql://user:password@host:5432/dbname")` (any libpq URL or conninfo)."""

    dialect: Dialect = "postgresql"
    in_memory = False

    def __init__(self, url: str, synchronous: str = "FULL", timeout: float = 30.0, max_readers: int = 8):
        self.synchronous = str(synchronous).upper()
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}")
        self.timeout = timeout
        self._params = {"connect_timeout": str(max(1, int(timeout))), "application_name": "personalize-torch",
                        **conninfo_to_dict(url)}
        self._write_lock = threading.Lock()      # the writer connection, one write at a time
        self._pool_lock = threading.Lock()       # `_idle`, the readers not in use (never held across a query)
        self._idle: list[psycopg.Connection] = []
        self._readers = threading.BoundedSemaphore(max_readers)
        self._closed = False
        self._writer = self._connect_writer()

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(**self._params, autocommit=True)
        except psycopg.OperationalError as err:
            raise DatabaseUnavailable("cannot connect to PostgreSQL", str(err)) from None

    def _connect_writer(self) -> psycopg.Connection:
        conn = self._connect()
        conn.execute(f"SET synchronous_commit = {SYNCHRONOUS_COMMIT[self.synchronous]}")
        conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
        conn.execute("SET idle_in_transaction_session_timeout = 60000")
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseUnavailable("the events database is closed")

    @contextmanager
    def write(self) -> Iterator[PostgresTransaction]:
        """One write transaction, committed when the block ends, after every other host's writes before it."""
        with self._write_lock:
            self._check_open()
            try:
                conn = self._begin()
                try:
                    with conn.cursor() as cur:
                        yield PostgresTransaction(cur)
                    conn.execute("COMMIT")
                except BaseException:
                    if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        conn.execute("ROLLBACK")
                    raise
            except psycopg.OperationalError as err:
                raise unavailable(err) from err

    def _begin(self) -> psycopg.Connection:
        """The writer connection in a new transaction that holds the write lock. A connection found broken
        (PostgreSQL restarted since the last write) is replaced, once: nothing was written on it yet."""
        for attempt in range(2):
            if self._writer.broken or self._writer.closed:
                self._writer = self._connect_writer()
            try:
                self._writer.execute("BEGIN")
                self._writer.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                return self._writer
            except psycopg.OperationalError:
                if not self._writer.broken:   # e.g. lock_timeout: end the transaction, report it
                    self._writer.execute("ROLLBACK")
                    raise
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def apply_schema(self, ddl: str, version: int | None = None) -> None:
        # Under the write lock: two hosts creating the same tables at once would otherwise collide.
        with self.write() as tx:
            for statement in filter(str.strip, ddl.split(";")):
                tx.execute(statement)
            if version is None:
                return
            tx.execute("CREATE TABLE IF NOT EXISTS events_schema_version (version INTEGER NOT NULL)")
            found = tx.execute("SELECT version FROM events_schema_version")
            if not found:
                tx.execute("INSERT INTO events_schema_version (version) VALUES (?)", (int(version),))
            elif found[0][0] != version:
                raise RuntimeError(f"events database schema version {found[0][0]}, expected {version}")

    @contextmanager
    def _reader(self) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection (at most `max_readers` at once; more callers wait)."""
        with self._readers:
            with self._pool_lock:
                self._check_open()
                conn = self._idle.pop() if self._idle else None
            conn = conn or self._connect()
            try:
                yield conn
            finally:
                with self._pool_lock:
                    if self._closed or conn.broken or conn.closed:
                        conn.close()
                    else:
                        self._idle.append(conn)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        for attempt in range(2):
            with self._reader() as conn:
                try:
                    return conn.execute(pyformat(sql), params).fetchall()
                except psycopg.OperationalError as err:
                    if attempt or not conn.broken:
                        raise unavailable(err) from err
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._write_lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()
            self._writer.close()
