"""Two serving hosts on one PostgreSQL events database: `python serve.py ... events_db=postgresql://...` twice,
on two ports (host "a" with two worker processes, host "b" with one). An event put through one changes the
other's next answer, a campaign deployed through one is served by both, and an auto-update runs once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from personalize_torch.serving.events.deployment_log import DeploymentLog
from personalize_torch.serving.http.worker_processes import wait_until_serving
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import train
from tests.conftest import REPO, SMALL_DEMO, compose_train_config, free_port
from tests.serving.event_databases import postgres_schema, postgres_server_url

SHOP = "arn:aws:personalize:us-east-1:123456789012:campaign/shop"
NEWS = "arn:aws:personalize:us-east-1:123456789012:campaign/news"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
NEW_ITEM = '{"genres": "Comedy", "price": 9.5, "creationTimestamp": 1700000000, "description": "A new film."}'
AUTO_UPDATE_MINUTES = 0.05   # every 3 seconds


@pytest.fixture(scope="module")
def hosts(trained_solution, tmp_path_factory):
    """(url of host a, url of host b, the database's URL, the deploy root, the update root)."""
    server = postgres_server_url()
    tmp = tmp_path_factory.mktemp("hosts")
    deploy_root, update_root = tmp / "models", tmp / "updates"
    with postgres_schema(server) as db:
        command = [sys.executable, str(REPO / "serve.py"),
                   (f"campaigns={{shop: {{solution: '{trained_solution['solution']}', "
                    f"auto_update_minutes: {AUTO_UPDATE_MINUTES}}}}}"),
                   f"events_db='{db}'",   # quoted for Hydra: the URL has a query (options=...)
                   f"deploy_root={deploy_root}", f"update_root={update_root}",
                   "access_log=false", "log_level=warning", "pin_workers=false"]
        ports = {"a": free_port(), "b": free_port()}
        servers = [subprocess.Popen([*command, f"port={ports['a']}", "workers=2", f"hydra.run.dir={tmp / 'a'}"],
                                    cwd=REPO),
                   subprocess.Popen([*command, f"port={ports['b']}", "workers=1", f"hydra.run.dir={tmp / 'b'}"],
                                    cwd=REPO)]
        try:
            urls = [f"http://127.0.0.1:{ports[h]}" for h in ("a", "b")]
            for server, url in zip(servers, urls):
                assert started(server, url), f"serve.py did not start: exit code {server.returncode}"
            yield (*urls, db, deploy_root, update_root)
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
            for server in servers:   # a stopped server exits 0 (tests/serving/test_sigterm.py)
                assert server.wait(timeout=60) == 0


def started(server: subprocess.Popen, url: str, seconds: float = 120.0) -> bool:
    deadline = time.time() + seconds
    while server.poll() is None and time.time() < deadline:
        if wait_until_serving(url, timeout=1):
            return True
    return False


def recommended(url: str, arn: str, user: str, n: int = 5) -> list[str]:
    with httpx.Client(timeout=30) as client:   # a new connection: any of a host's workers may answer
        r = client.post(f"{url}/recommendations", json={"campaignArn": arn, "userId": user, "numResults": n})
    assert r.status_code == 200, r.text
    return [x["itemId"] for x in r.json()["itemList"]]


def eventually(check, seconds: float = 60.0) -> bool:
    deadline = time.time() + seconds
    while not check():
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_an_event_put_through_one_host_changes_the_others_answer(hosts):
    a, b, *_ = hosts
    top = recommended(b, SHOP, "visitor-1")[0]
    event = {"eventType": "click", "itemId": top, "sentAt": 1700000000}
    r = httpx.post(f"{a}/events", json={"trackingId": "t", "userId": "visitor-1", "sessionId": "s-1",
                                        "eventList": [event]})
    assert r.status_code == 200
    # no waiting: host b reads the user's events from the database at each request
    assert top not in recommended(b, SHOP, "visitor-1")
    assert top in recommended(b, SHOP, "visitor-2")


def test_a_campaign_deployed_through_one_host_is_served_by_both(hosts):
    a, b, _, deploy_root, _ = hosts
    other = train(compose_train_config([*SMALL_DEMO, "data.demo.seed=7", "logger=none"], deploy_root))["solution"]
    user = Predictor.from_dir(other).solution.user_vocab.ids[0]
    expected = [r.item_id for r in Predictor.from_dir(other).recommend([user], 5)[0]]
    assert recommended(b, SHOP, user) != expected
    r = httpx.put(f"{b}/campaigns/news", json={"solution": str(Path(other).relative_to(deploy_root))}, timeout=120)
    assert r.status_code == 200, r.text

    def both_serve_news() -> bool:
        return all(httpx.get(f"{url}/ping").json()["campaigns"] == ["news", "shop"] for url in (a, a, a, a, b))

    assert eventually(both_serve_news)
    assert all(recommended(url, NEWS, user) == expected for url in (a, a, a, a, b))


def test_an_auto_update_runs_once_across_hosts(hosts):
    a, b, db, _, update_root = hosts
    assert httpx.post(f"{b}/items", json={"datasetArn": ITEMS_ARN,
                                          "items": [{"itemId": "new-film", "properties": NEW_ITEM}]}).status_code == 200
    everywhere = (a, a, a, a, b)
    assert eventually(lambda: all("new-film" in recommended(url, SHOP, "visitor-3", 500) for url in everywhere))
    time.sleep(2 * 60 * AUTO_UPDATE_MINUTES)   # two more periods: nobody updates again
    updates = [p for p in update_root.iterdir() if p.is_dir()]
    assert len(updates) == 1, updates
    log = DeploymentLog(db)
    try:
        recorded = [d for d in log.after(0) if d.campaign == "shop"]
    finally:
        log.close()
    assert [Path(d.solution).parent for d in recorded] == updates   # the one update, recorded once
