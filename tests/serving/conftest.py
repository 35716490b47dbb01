"""Serving fixtures: an empty events database on each backend (tests/serving/event_databases.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from personalize_torch.serving.events.event_store import EventStore
from tests.serving.event_databases import BACKENDS, new_events_db


@pytest.fixture(params=BACKENDS)
def events_db(request, tmp_path) -> Iterator[str]:
    """An empty events database (`events_db` location): an SQLite file, then a PostgreSQL schema."""
    with new_events_db(request.param, tmp_path) as location:
        yield location


@pytest.fixture
def postgres_events_db(tmp_path) -> Iterator[str]:
    """An empty PostgreSQL events database (a URL with its own schema); skips where there is no server."""
    with new_events_db("postgresql", tmp_path) as location:
        yield location


@pytest.fixture
def event_store(events_db) -> Iterator[EventStore]:
    """An open, empty event store on each backend."""
    with EventStore(events_db) as store:
        yield store
