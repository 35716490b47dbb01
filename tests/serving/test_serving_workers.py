"""`serve.py workers=N`: several processes on one port share events and deploys; a dead worker comes back."""

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from personalize_torch.serving.events.deployment_log import DeploymentLog
from personalize_torch.serving.http.worker_processes import wait_until_serving
from tests.conftest import REPO, free_port, kill_worker_and_await_replacement, worker_pids

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/default"


def test_deployment_log_gives_each_campaigns_newest_deploy(events_db):
    log = DeploymentLog(events_db)
    v1 = log.record("shop", "/s/one", {"exploration_weight": 0.1})
    v2 = log.record("news", "/s/two", {})
    v3 = log.record("shop", "/s/three", {"exploration_weight": 0.3})
    assert v1 < v2 < v3 == log.latest_version()
    assert [(d.campaign, d.solution, d.settings) for d in log.after(0)] == [
        ("news", "/s/two", {}), ("shop", "/s/three", {"exploration_weight": 0.3})]
    assert [d.version for d in log.after(v2)] == [v3]
    assert log.after(v3) == []
    with pytest.raises(ValueError, match="database file"):
        DeploymentLog(":memory:")


def ping_workers(url: str, connections: int = 24) -> set[int]:
    """The worker index that answers /ping on each of several new connections."""
    seen = set()
    for _ in range(connections):
        with httpx.Client(timeout=10) as c:   # a new connection each time
            seen.add(c.get(f"{url}/ping").json()["worker"])
    return seen


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need fork()")
def test_two_workers_share_events_and_a_killed_worker_comes_back(trained_solution, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"solution={trained_solution['solution']}",
                               f"port={port}", f"events_db={tmp_path / 'events.sqlite'}", "workers=2",
                               "access_log=false", "log_level=warning", f"hydra.run.dir={tmp_path / 'run'}"],
                              cwd=REPO)
    try:
        assert wait_until_serving(url, timeout=60)
        assert ping_workers(url) == {0, 1}
        # PutEvents answered by one worker; every later GetRecommendations, whichever worker answers it,
        # reads the event (the streamed item is left out of the user's recommendations).
        recs = {"campaignArn": ARN, "userId": "new-user", "numResults": 5}
        with httpx.Client(timeout=10) as c:
            top = c.post(f"{url}/recommendations", json=recs).json()["itemList"][0]["itemId"]
            event = {"eventType": "click", "itemId": top, "sentAt": 1700000000}
            assert c.post(f"{url}/events", json={"trackingId": "t", "userId": "new-user", "sessionId": "s",
                                                 "eventList": [event]}).status_code == 200
        answered_by = set()
        for _ in range(16):
            with httpx.Client(timeout=10) as c:
                answered_by.add(c.get(f"{url}/ping").json()["worker"])
                items = [x["itemId"] for x in c.post(f"{url}/recommendations", json=recs).json()["itemList"]]
            assert top not in items
        assert answered_by == {0, 1}

        first, second = worker_pids(server.pid)
        cpus = os.sched_getaffinity(0)
        if len(cpus) > 1:   # pin_workers (default): each worker on its own CPU
            pinned = [os.sched_getaffinity(pid) for pid in (first, second)]
            assert all(len(p) == 1 for p in pinned) and pinned[0] != pinned[1] and set().union(*pinned) <= cpus
        pids = kill_worker_and_await_replacement(server.pid, first)
        assert second in pids and first not in pids and len(pids) == 2
        for _ in range(300):
            try:
                if ping_workers(url, 8) == {0, 1}:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert ping_workers(url) == {0, 1}
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    assert worker_pids(server.pid) == []


def test_workers_need_an_events_file(trained_solution, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "serve.py"), f"solution={trained_solution['solution']}",
                           "events_db=:memory:", "workers=2", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "events_db" in done.stderr and "database file" in done.stderr
