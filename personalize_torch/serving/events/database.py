"""What the event store and the deployment log need of a database, whichever it is (SQLite or PostgreSQL).

The two backends (`sqlite_database.SQLiteDatabase`, `postgres_database.PostgresDatabase`) give the same
contract, so the stores above them hold one copy of their queries:

- `write()`: one transaction, committed when the block ends (rolled back on an exception) and durable when
  `write()` returns, per the backend's synchronous setting. Writes are serialized: one write transaction at
  a time per database, across threads, processes and hosts (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
  transaction-level advisory lock). So numbers handed out inside a write (`events.seq`,
  `campaign_deployments.version`) are committed in increasing order: a reader that has seen number N will
  never see a smaller one appear later.
- `query()`: a read outside any write; readers never wait for the writer.
- A write or read that the database cannot do now (its disk or its own size limit full, its write lock held
  past the timeout, the connection to it lost, the database closed) raises `DatabaseUnavailable`, after
  rolling back what the transaction wrote: nothing of that call is stored, and the same call may succeed
  later (the HTTP handlers answer 503 ServiceUnavailable). Other errors (a bug in a statement) stay as the
  backend raised them.
- Statements use qmark parameters (`?`), always bound, never formatted into the SQL text. `dialect` names
  the backend, for the few statements that differ (the tables' DDL).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]


class DatabaseUnavailable(RuntimeError):
    """The database could not do a write or read now; nothing of the write was stored. `reason` says why in
    words safe to show a client (no file path, host or credentials); `detail` (in the message, for the
    server's log and the operator) and the chained error say more."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Transaction(Protocol):
    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement; its rows (empty for a statement that returns none)."""

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        """Run one statement for each row of parameters."""


class Database(Protocol):
    dialect: Dialect
    in_memory: bool      # nothing outlives the process (SQLite ":memory:")

    def apply_schema(self, ddl: str, version: int | None = None) -> None:
        """Create what `ddl` (statements separated by ';', each `IF NOT EXISTS`) creates; with `version`,
        record it in a new database, or raise RuntimeError when the database holds another."""

    def write(self) -> AbstractContextManager[Transaction]:
        """One serialized write transaction (see the module's docstring)."""

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """The rows of one read."""

    def close(self) -> None:
        """Close every connection; later calls raise DatabaseUnavailable (a RuntimeError)."""
