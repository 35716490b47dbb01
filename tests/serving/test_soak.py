"""bench/soak.py, shortened: mixed load on `serve.py workers=2` with a deploy and an auto-update in the middle; no
request fails and every acknowledged event is in the store afterwards (the 20-minute run: bench/RESULTS.md). And
what a long run needs of the event store: reads from threads that come and go leave no connections behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from personalize_torch.serving.events.event_store import Event, EventStore
from personalize_torch.serving.events.sqlite_database import MAX_IDLE_READERS
from tests.conftest import REPO


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need fork()")
def test_a_short_soak_fails_no_request_and_loses_no_event(trained_solution, tmp_path):
    out = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--solution", trained_solution["solution"],
                           "--minutes", "0.3", "--ramp-seconds", "4", "--window-seconds", "6", "--clients", "8",
                           "--workers", "2", "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["failed"] == 0 and result["failures"] == []
    assert result["events_lost"] == 0 and result["events_acknowledged"] > 100
    assert result["events_stored"] >= result["events_acknowledged"]
    assert result["middle"]["deploy_status"] == 200 and result["deployed"]
    assert result["middle"]["put_items_status"] == 200 and result["auto_updated"]
    assert result["server_exit_code"] == 0
    assert all(row["requests"] > 0 for row in result["windows"])
    assert "| window (from s) |" in done.stdout and "checks:" in done.stdout


def open_files(prefix: str) -> int:
    """How many file descriptors of this process are open on files whose path starts with `prefix` (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(prefix)
        except OSError:   # closed meanwhile
            pass
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc (Linux)")
def test_reads_from_threads_that_come_and_go_do_not_pile_up_connections(tmp_path):
    """A server's thread pool ends idle threads and starts new ones: each new thread's reads must not leave one
    more open connection (file handles, page cache) behind, or a long-running server runs out of both.
    Connections are counted by their handles on the write-ahead log (one each): SQLite defers closing a closed
    connection's handle on the database file itself while another connection of the process holds a lock on it
    (POSIX locks belong to the process), then reuses or closes it, so that count is not the number of connections."""
    path = tmp_path / "events.sqlite"
    wal = f"{path}-wal"
    with EventStore(path) as store:
        store.put_events("t", "s", "u", [Event("click", 1.7e9, item_id="i")])
        store.user_event_columns("u")
        before = open_files(wal)
        for _ in range(60):
            thread = threading.Thread(target=store.user_event_columns, args=("u",))
            thread.start()
            thread.join()
        assert open_files(wal) <= before + 1
        many = [threading.Thread(target=lambda: [store.user_event_columns("u") for _ in range(20)]) for _ in range(24)]
        for thread in many:
            thread.start()
        for thread in many:
            thread.join()
        assert open_files(wal) <= 1 + MAX_IDLE_READERS   # the writer and the idle readers
        assert len(store.user_events("u")) == 1
    assert open_files(str(path)) == 0
