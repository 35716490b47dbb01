"""Where the events database is (`events_db`): a file path, `sqlite:///<path>` or `postgresql://...`.

- `outputs/serve/events.sqlite`, `/var/lib/personalize/events.sqlite`: an embedded SQLite file (the default);
  `:memory:` keeps nothing.
- `sqlite:///<path>`: the same, as a URL: `sqlite:///relative/path.sqlite`, `sqlite:////absolute/path.sqlite`,
  `sqlite:///:memory:`.
- `postgresql://user:password@host:5432/dbname` (or `postgres://...`, with libpq's query parameters such as
  `?sslmode=require`): a PostgreSQL database, which several serving hosts can share.

`open_database` connects to it; `redacted` is the location with any password hidden, for messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from personalize_torch.serving.events.database import Database, Dialect
from personalize_torch.serving.events.sqlite_database import SQLiteDatabase

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"


@dataclass(frozen=True)
class DatabaseLocation:
    dialect: Dialect
    target: str   # the SQLite file path (or ":memory:"), or the PostgreSQL URL


def parse_location(location: str | Path) -> DatabaseLocation:
    """The backend and its target named by an `events_db` value; ValueError for another URL scheme."""
    text = str(location)
    if text.startswith(POSTGRES_SCHEMES):
        return DatabaseLocation("postgresql", text)
    if text.startswith(SQLITE_SCHEME):
        path = text[len(SQLITE_SCHEME):]
        if not path:
            raise ValueError("sqlite:/// needs a path: sqlite:///events.sqlite, sqlite:////abs/events.sqlite")
        return DatabaseLocation("sqlite", path)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise ValueError(f"unsupported events database URL {redacted(text)!r}: give a file path, "
                         "sqlite:///<path> or postgresql://user:password@host:port/dbname")
    return DatabaseLocation("sqlite", text)


def open_database(location: str | Path, synchronous: str = "FULL", timeout: float = 30.0) -> Database:
    """A connected database at `location` (see the module's docstring). Raises ValueError for a bad
    location or setting, RuntimeError when it cannot be reached (or psycopg is not installed), OSError or
    sqlite3.Error for an SQLite file that cannot be opened."""
    where = parse_location(location)
    if where.dialect == "sqlite":
        return SQLiteDatabase(where.target, synchronous=synchronous, timeout=timeout)
    try:
        from personalize_torch.serving.events.postgres_database import PostgresDatabase
    except ImportError:
        raise RuntimeError("a postgresql:// events database needs psycopg: "
                           "pip install 'personalize-torch[postgres]'") from None
    return PostgresDatabase(where.target, synchronous=synchronous, timeout=timeout)


def redacted(location: str | Path) -> str:
    """`location` with the password of a URL replaced by `***` (what may be logged or printed)."""
    text = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*:)[^@/?#]*@", r"\1***@", str(location))
    return re.sub(r"([?&]password=)[^&]*", r"\1***", text)


def in_memory(location: str | Path) -> bool:
    """Whether `location` is an SQLite database that keeps nothing (`:memory:`, `sqlite:///:memory:`);
    False for a location that does not parse (opening it says why)."""
    try:
        where = parse_location(location)
    except ValueError:
        return False
    return where.dialect == "sqlite" and where.target == ":memory:"
