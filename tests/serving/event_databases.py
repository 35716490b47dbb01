"""The events databases the serving tests run on: an SQLite file, and PostgreSQL where one can be had.

PostgreSQL: the server at $PERSONALIZE_TEST_POSTGRES_URL (CI sets it after running .ci/start_postgres);
when that is unset, a local server that .ci/start_postgres starts (as root on Debian), at `LOCAL_URL`.
Tests that need it are skipped, with the reason, only where neither is possible. Each test gets its own
PostgreSQL schema (the URL sets its search_path), dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL_VARIABLE = "PERSONALIZE_TEST_POSTGRES_URL"
LOCAL_URL = "postgresql://personalize:personalize@127.0.0.1:5432/personalize_test"
BACKENDS = ["sqlite", "postgresql"]


@functools.cache
def _postgres_server() -> tuple[str | None, str]:
    """(the server's URL, "") or (None, why there is none)."""
    url = os.environ.get(POSTGRES_URL_VARIABLE) or None
    given = url is not None   # CI gave a server: the tests must run on it
    try:
        import psycopg
    except ImportError:
        if given:
            raise RuntimeError(f"{POSTGRES_URL_VARIABLE} is set but psycopg is not installed: "
                               "pip install -e '.[postgres]'") from None
        return None, "psycopg is not installed: pip install -e '.[postgres]'"
    if url is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return None, (f"no PostgreSQL: set {POSTGRES_URL_VARIABLE}=postgresql://..., or run the tests as root "
                          "on Debian so that .ci/start_postgres can start one")
        done = subprocess.run(["bash", str(REPO / ".ci" / "start_postgres")], capture_output=True, text=True,
                              timeout=900, check=False)
        if done.returncode != 0:
            return None, f"no PostgreSQL: .ci/start_postgres failed: {(done.stderr or done.stdout)[-500:]}"
        url = LOCAL_URL
    try:
        psycopg.connect(url, connect_timeout=10).close()
    except psycopg.Error as err:
        if given:
            raise RuntimeError(f"{POSTGRES_URL_VARIABLE}: cannot connect: {err}") from None
        return None, f"no PostgreSQL: cannot connect to {LOCAL_URL}: {err}"
    return url, ""


def postgres_server_url() -> str:
    """The test server's URL; skips the calling test when there is none."""
    url, reason = _postgres_server()
    if url is None:
        pytest.skip(reason)
    return url


@contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """A URL of `server_url` whose tables live in a new, empty schema (dropped at the end)."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{separator}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


@contextmanager
def new_events_db(backend: str, directory: Path) -> Iterator[str]:
    """An empty events database's `events_db` location: a file under `directory`, or a PostgreSQL URL."""
    if backend == "sqlite":
        yield str(directory / "events.sqlite")
        return
    with postgres_schema(postgres_server_url()) as url:
        yield url
