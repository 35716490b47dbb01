"""The events database cannot take writes (full, locked, out of reach): PutEvents, PutItems and PutUsers answer
503 ServiceUnavailable in AWS's shape (boto3 retries it), GetRecommendations goes on, nothing acknowledged is lost,
and once the database can take writes again they are accepted with no restart."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions
import pytest
from fastapi.testclient import TestClient

from personalize_torch.serving.events.database import DatabaseUnavailable
from personalize_torch.serving.events.event_store import Event, EventStore
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor
from tests.conftest import serving

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/default"
ITEMS = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
USERS = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS"
PADDING = "x" * 240   # ids this long fill pages quickly


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


def limit_pages(store: EventStore, extra_pages: int | None) -> None:
    """Let the SQLite file grow by at most `extra_pages` pages from now (None: no limit), as a full disk would:
    SQLite's max_page_count, a setting of the store's writer connection."""
    db = store._db
    with db._lock:
        pages = db._writer.execute("PRAGMA page_count").fetchone()[0]
        db._writer.execute(f"PRAGMA max_page_count={pages + extra_pages if extra_pages is not None else 2**31}")


class Calls:
    """PutEvents / PutItems / PutUsers calls through an HTTP client, each with new ids; what was acknowledged."""

    def __init__(self, client):
        self.client, self.n = client, 0
        self.events: set[str] = set()
        self.items: set[str] = set()
        self.users: set[str] = set()

    def put_events(self):
        self.n += 1
        ids = [f"e{self.n}-{k}" for k in range(5)]
        body = {"trackingId": "t", "userId": "streamed-user", "sessionId": "s", "eventList": [
            {"eventType": "click", "itemId": PADDING, "eventId": i, "sentAt": 1.7e9 + self.n} for i in ids]}
        response = self.client.post("/events", json=body)
        if response.status_code == 200:
            self.events.update(ids)
        return response

    def put_items(self):
        self.n += 1
        ids = [f"i{self.n}-{k}-{PADDING}" for k in range(5)]
        response = self.client.post("/items", json={"datasetArn": ITEMS, "items": [
            {"itemId": i, "properties": json.dumps({"description": PADDING})} for i in ids]})
        if response.status_code == 200:
            self.items.update(ids)
        return response

    def put_users(self):
        self.n += 1
        ids = [f"u{self.n}-{k}-{PADDING}" for k in range(5)]
        response = self.client.post("/users", json={"datasetArn": USERS, "users": [
            {"userId": u, "properties": json.dumps({"segment": PADDING})} for u in ids]})
        if response.status_code == 200:
            self.users.update(ids)
        return response

    def until_refused(self, call, limit: int = 400):
        """Make `call` until one is refused; that response."""
        for _ in range(limit):
            response = call()
            if response.status_code != 200:
                return response
        raise AssertionError(f"{limit} calls all stored: the database never filled")

    def check_stored(self, store: EventStore) -> None:
        """Every acknowledged event, item and user is in the store, and nothing that was refused."""
        assert {e.event_id for e in store.events()} == self.events
        assert {r.id for r in store.items(ITEMS)} == self.items
        assert {r.id for r in store.users(USERS)} == self.users


def assert_service_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["x-amzn-ErrorType"] == "ServiceUnavailable"
    body = response.json()
    assert body["__type"] == "ServiceUnavailable" and "full" in body["message"] and "nothing" in body["message"]


def recommendations_work(client) -> None:
    response = client.post("/recommendations", json={"campaignArn": ARN, "userId": "streamed-user", "numResults": 5})
    assert response.status_code == 200 and len(response.json()["itemList"]) == 5


def test_a_full_events_database_refuses_writes_keeps_serving_and_recovers(predictor, tmp_path):
    with EventStore(tmp_path / "events.sqlite") as store, TestClient(create_app({"shop": predictor}, events=store)) \
            as client:
        calls = Calls(client)
        assert calls.put_events().status_code == 200
        limit_pages(store, 2)
        refused = {call.__name__: calls.until_refused(call) for call in (calls.put_events, calls.put_items,
                                                                          calls.put_users)}
        for response in refused.values():
            assert_service_unavailable(response)
        recommendations_work(client)
        calls.check_stored(store)            # acknowledged: all there; refused: none of it
        limit_pages(store, None)             # space returns
        for call in (calls.put_events, calls.put_items, calls.put_users):
            assert call().status_code == 200
        recommendations_work(client)
        calls.check_stored(store)


def test_boto3_retries_the_503_then_raises_service_unavailable(predictor, tmp_path):
    with EventStore(tmp_path / "events.sqlite") as store, serving(create_app({"shop": predictor}, events=store)) as url:
        events = boto3.client("personalize-events", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test",
                              config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 3}))
        event = {"eventType": "click", "itemId": PADDING, "sentAt": 1.7e9}
        limit_pages(store, 0)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            for n in range(200):
                events.put_events(trackingId="t", userId="u", sessionId="s",
                                  eventList=[{**event, "eventId": f"{n}-{k}"} for k in range(10)])
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert refused.value.response["ResponseMetadata"]["RetryAttempts"] == 3   # sent again 3 times, then raised
        limit_pages(store, None)
        events.put_events(trackingId="t", userId="u", sessionId="s", eventList=[{**event, "eventId": "after"}])
        assert "after" in {e.event_id for e in store.events()}


@contextmanager
def write_lock_held(location: str):
    """Another process's write transaction on the events database, held until the block ends."""
    if location.startswith("postgresql://"):
        import psycopg

        from personalize_torch.serving.events.postgres_database import WRITE_LOCK

        with psycopg.connect(location, autocommit=True) as other:
            other.execute("BEGIN")
            other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield
            other.execute("ROLLBACK")
        return
    other = sqlite3.connect(location, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_write_lock_held_past_the_timeout_is_a_503_and_the_next_call_goes_through(predictor, events_db,
                                                                                     tmp_path):
    with EventStore(events_db, timeout=0.5) as store, \
            TestClient(create_app({"shop": predictor}, events=store)) as client:
        calls = Calls(client)
        assert calls.put_events().status_code == 200
        with write_lock_held(events_db):
            refused = calls.put_events()
            assert refused.status_code == 503 and refused.json()["__type"] == "ServiceUnavailable"
            message = refused.json()["message"]   # the client is told why, not where the database is
            assert events_db not in message and str(tmp_path) not in message
            assert urlparse(events_db).hostname is None or urlparse(events_db).hostname not in message
            assert calls.put_items().status_code == 503
            recommendations_work(client)
        assert calls.put_events().status_code == 200 and calls.put_items().status_code == 200
        calls.check_stored(store)


def test_the_store_rolls_back_and_stays_usable_after_a_refused_write(tmp_path):
    with EventStore(tmp_path / "events.sqlite") as store:
        store.put_events("t", "s", "u", [Event("click", 1.7e9, event_id="kept")])
        limit_pages(store, 0)
        with pytest.raises(DatabaseUnavailable, match="full"):
            for n in range(200):
                store.put_events("t", "s", "u", [Event("click", 1.7e9, item_id=PADDING, event_id=str(n))] * 10)
        limit_pages(store, None)
        store.put_events("t", "s", "u", [Event("click", 1.7e9, event_id="later")])
        ids = [e.event_id for e in store.events()]
        assert ids[0] == "kept" and ids[-1] == "later" and len(ids) % 10 == 2   # refused calls: none of their rows
    with pytest.raises(DatabaseUnavailable, match="closed"):
        store.count_events()


@pytest.fixture
def small_disk(tmp_path):
    """A 192 KB tmpfs (a real full disk: SQLite fails at COMMIT, writing its log); its resize(size) gives space
    back. Needs root (mount); skipped elsewhere."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")

    class Disk:
        path: Path = disk

        def resize(self, size: str) -> None:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)

    try:
        yield Disk()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_refuses_writes_keeps_serving_and_recovers(predictor, small_disk):
    with EventStore(small_disk.path / "events.sqlite") as store, \
            TestClient(create_app({"shop": predictor}, events=store)) as client:
        calls = Calls(client)
        assert_service_unavailable(calls.until_refused(calls.put_events))
        recommendations_work(client)
        assert calls.put_events().status_code == 503          # still full: refused again, no transaction left open
        calls.check_stored(store)
        small_disk.resize("4m")
        assert calls.put_events().status_code == 200
        calls.check_stored(store)


def test_an_unreadable_events_database_still_answers_recommendations_without_the_streamed_events(
        predictor, tmp_path, monkeypatch, caplog):
    """Reads failing (the database's disk or server gone): GetRecommendations and GetPersonalizedRanking answer
    from the trained history (a streamed item is no longer left out), with a warning; once reads work again the
    streamed events count again, with no restart."""
    with EventStore(tmp_path / "events.sqlite") as store, \
            TestClient(create_app({"shop": predictor}, events=store)) as client:
        def top(n=5):
            response = client.post("/recommendations", json={"campaignArn": ARN, "userId": "streamed-user",
                                                             "numResults": n})
            assert response.status_code == 200, response.text
            return [i["itemId"] for i in response.json()["itemList"]]

        first = top()[0]
        assert client.post("/events", json={"trackingId": "t", "userId": "streamed-user", "sessionId": "s",
                                             "eventList": [{"eventType": "click", "itemId": first,
                                                            "sentAt": 1.7e9}]}).status_code == 200
        assert first not in top()   # a streamed item is left out of the user's list

        def unreadable(*args, **kwargs):
            raise DatabaseUnavailable("the events database cannot be read", "disk I/O error")

        monkeypatch.setattr(store._db, "query", unreadable)
        with caplog.at_level("WARNING"):
            assert top()[0] == first
            ranking = client.post("/personalize-ranking", json={"campaignArn": ARN, "userId": "streamed-user",
                                                                 "inputList": [first, top()[1]]})
        assert ranking.status_code == 200, ranking.text
        assert "cannot be read" in caplog.text
        monkeypatch.undo()
        assert first not in top()
