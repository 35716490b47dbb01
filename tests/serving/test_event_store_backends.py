"""The events database behind `events_db`: a path or sqlite:/// URL (SQLite), or a postgresql:// URL, with the
same guarantees on each: arrival numbers a reader can follow as a watermark, and one claimant per
auto-update period among all the processes (and hosts) that share it."""

from __future__ import annotations

import threading
import time

import pytest

from personalize_torch.serving.events.deployment_log import DeploymentLog
from personalize_torch.serving.events.event_store import Event, EventStore
from personalize_torch.serving.events.store_url import in_memory, parse_location, redacted


def test_events_db_values_name_their_backend(tmp_path, monkeypatch):
    assert parse_location("outputs/serve/events.sqlite") == parse_location("sqlite:///outputs/serve/events.sqlite")
    assert parse_location("sqlite:////var/lib/events.sqlite").target == "/var/lib/events.sqlite"
    assert parse_location("postgresql://u:pw@db:5432/events").dialect == "postgresql"
    assert parse_location("postgres://db/events").target == "postgres://db/events"
    assert in_memory(":memory:") and in_memory("sqlite:///:memory:") and not in_memory("postgresql://db/x")
    with pytest.raises(ValueError, match="postgresql://user:password@host") as err:
        parse_location("mysql://root:hunter2@db/events")
    assert "hunter2" not in str(err.value)
    assert redacted("postgresql://app:s3cr%40t@db:5432/events?sslmode=require") == \
        "postgresql://app:***@db:5432/events?sslmode=require"
    assert redacted("postgresql://db/events?user=app&password=s3cret") == "postgresql://db/events?user=app&password=***"
    assert redacted("outputs/serve/events.sqlite") == "outputs/serve/events.sqlite"
    monkeypatch.chdir(tmp_path)
    with EventStore("sqlite:///relative/events.sqlite") as store:
        store.put_events("t", "s", "u", [Event("click", 1.0, "i")])
    with EventStore(tmp_path / "relative" / "events.sqlite") as same_file:
        assert [e.item_id for e in same_file.user_events("u")] == ["i"]
    with EventStore("sqlite:///:memory:") as memory:
        assert memory.in_memory


def test_a_watermark_reader_misses_no_event(events_db):
    """Writers with their own connections (as processes or hosts have) and a reader that asks only for the
    events after the newest it has seen: every event reaches it once, in increasing order."""
    writers = [EventStore(events_db) for _ in range(3)]
    reader = EventStore(events_db)
    written: list[int] = []

    def write(store: EventStore, k: int) -> None:
        for n in range(25):
            written.extend(store.put_events("t", f"s{k}", f"u{k}", [Event("click", float(n), f"i{n}")] * 2))

    threads = [threading.Thread(target=write, args=(store, k)) for k, store in enumerate(writers)]
    seen: list[int] = []
    try:
        for t in threads:
            t.start()
        while True:
            finished = not any(t.is_alive() for t in threads)
            seen.extend(e.seq for e in reader.events(after_seq=seen[-1] if seen else 0))
            if finished:
                break
        for t in threads:
            t.join()
    finally:
        for store in [*writers, reader]:
            store.close()
    assert seen == sorted(written) and len(seen) == 3 * 25 * 2


def test_each_auto_update_period_has_one_claimant(events_db):
    """Two deployment logs on one database stand for two hosts, four threads each: one claim per period wins,
    and no one claims again until the claimant finishes."""
    hosts = [DeploymentLog(events_db), DeploymentLog(events_db)]
    try:
        def claims(campaign: str, every_seconds: float) -> list[bool]:
            results: list[bool] = []
            threads = [threading.Thread(target=lambda h=h: results.append(h.claim_auto_update(campaign, every_seconds)))
                       for h in hosts for _ in range(4)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            return results

        assert claims("shop", 0.3).count(True) == 0        # the first period starts at the first claim
        time.sleep(0.35)
        assert claims("shop", 0.3).count(True) == 1
        time.sleep(0.35)
        assert claims("shop", 0.3).count(True) == 0        # held: its update is still running
        hosts[1].finish_auto_update("shop", 0.3)
        assert claims("shop", 0.3).count(True) == 0        # the next period has just started
        time.sleep(0.35)
        assert claims("shop", 0.3).count(True) == 1
        assert claims("news", 0.0).count(True) == 1        # campaigns have their own periods
    finally:
        for log in hosts:
            log.close()


def test_a_postgres_store_replaces_connections_postgres_closed(postgres_events_db):
    """PostgreSQL restarted (here: every connection of the store ended by the server): the next read and the
    next write work on new connections."""
    import psycopg

    with EventStore(postgres_events_db) as store:
        store.put_events("t", "s", "u", [Event("click", 1.0, "i1")])
        assert len(store.user_events("u")) == 1
        with psycopg.connect(postgres_events_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'personalize-torch' AND pid <> pg_backend_pid()")
        assert [e.item_id for e in store.user_events("u")] == ["i1"]
        store.put_events("t", "s", "u", [Event("click", 2.0, "i2")])
        assert [e.item_id for e in store.user_events("u")] == ["i1", "i2"]
