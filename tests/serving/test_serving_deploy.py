"""Deploying a new solution version to a live campaign: no request fails, and then the new one answers."""

import threading

import pytest
import httpx

from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.training import train
from tests.conftest import SMALL_DEMO, compose_train_config, serving

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/shop"


@pytest.fixture(scope="module")
def solutions(trained_solution, tmp_path_factory):
    """Popularity-Count (served first) and SIMS (deployed), under one deploy root."""
    root = tmp_path_factory.mktemp("deploy")
    cfg = compose_train_config(SMALL_DEMO + ["recipe=sims", "logger=none"], root)
    sims = train(cfg)["solution"]
    return root, trained_solution["solution"], sims


def test_redeploy_under_load_fails_no_request(solutions):
    root, popularity_dir, sims_dir = solutions
    old = Predictor.from_dir(popularity_dir)
    user = old.solution.user_vocab.ids[0]
    with serving(create_app({"shop": old}, deploy_root=root)) as url:
        failures, answers, stop = [], [], threading.Event()

        def load():
            with httpx.Client(timeout=30) as s:
                while not stop.is_set():
                    r = s.post(f"{url}/recommendations", json={"campaignArn": ARN, "userId": user, "numResults": 5})
                    (answers if r.status_code == 200 else failures).append(r.status_code)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            deployed = httpx.put(f"{url}/campaigns/shop", json={"solution": str(sims_dir), "explorationWeight": 0.0},
                                 timeout=120)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert deployed.status_code == 200, deployed.text
        assert deployed.json() == {"campaign": "shop", "recipe": "sims"}
        assert failures == [] and len(answers) > 10
        after = httpx.post(f"{url}/recommendations", json={"campaignArn": ARN, "userId": user, "numResults": 5})
        expected = Predictor.from_dir(sims_dir).recommend([user], 5)[0]
        assert [x["itemId"] for x in after.json()["itemList"]] == [r.item_id for r in expected]


def test_deploy_is_refused_outside_the_root_or_when_disabled(solutions, tmp_path):
    root, popularity_dir, _ = solutions
    from fastapi.testclient import TestClient

    client = TestClient(create_app({"shop": Predictor.from_dir(popularity_dir)}, deploy_root=root))
    outside = client.put("/campaigns/shop", json={"solution": str(tmp_path)})
    assert outside.status_code == 400 and "deploy_root" in outside.json()["message"]
    escape = client.put("/campaigns/shop", json={"solution": "../../etc"})
    assert escape.status_code == 400
    disabled = TestClient(create_app({"shop": Predictor.from_dir(popularity_dir)}))
    refused = disabled.put("/campaigns/shop", json={"solution": "x"})
    assert refused.status_code == 403 and refused.headers["x-amzn-ErrorType"] == "AccessDeniedException"


def test_a_deploy_reaches_the_other_worker_processes(solutions, events_db):
    """Two apps sharing one events database (an SQLite file, or PostgreSQL) stand for two `workers` (or
    hosts): a deploy made through one is served by the other after its next poll of the deployment log, and
    a new campaign appears there too."""
    from fastapi.testclient import TestClient

    from personalize_torch.serving.events.deployment_log import DeploymentLog
    from personalize_torch.serving.events.event_store import EventStore

    root, popularity_dir, sims_dir = solutions
    db = events_db   # one database, several processes' connections
    log = DeploymentLog(db)
    start = log.record("shop", popularity_dir, {})
    old = Predictor.from_dir(popularity_dir)
    user = old.solution.user_vocab.ids[0]
    expected = [r.item_id for r in Predictor.from_dir(sims_dir).recommend([user], 5)[0]]
    body = {"campaignArn": ARN, "userId": user, "numResults": 5}
    with EventStore(db) as store_a, EventStore(db) as store_b, \
            TestClient(create_app({"shop": old}, events=store_a, deploy_root=root, deployments=DeploymentLog(db),
                                  deployed_version=start, worker=0, deploy_poll_seconds=0.05)) as a, \
            TestClient(create_app({"shop": old}, events=store_b, deploy_root=root, deployments=DeploymentLog(db),
                                  deployed_version=start, worker=1, deploy_poll_seconds=0.05)) as b:
        assert [x["itemId"] for x in b.post("/recommendations", json=body).json()["itemList"]] != expected
        assert a.put("/campaigns/shop", json={"solution": str(sims_dir)}).status_code == 200
        assert a.put("/campaigns/news", json={"solution": str(sims_dir)}).status_code == 200
        for _ in range(200):
            if b.get("/ping").json()["campaigns"] == ["news", "shop"]:
                break
            threading.Event().wait(0.05)
        assert b.get("/ping").json() == {"status": "ok", "campaigns": ["news", "shop"], "worker": 1}
        assert [x["itemId"] for x in b.post("/recommendations", json=body).json()["itemList"]] == expected
    # each deploy was recorded once (the worker that made it does not load it again)
    assert [(d.campaign, d.solution) for d in log.after(start)] == [("shop", str(sims_dir)), ("news", str(sims_dir))]
