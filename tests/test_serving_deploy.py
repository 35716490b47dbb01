"""Deploying a new solution version to a live campaign: no request fails, and then the new one answers."""

import threading

import pytest
import httpx

from personalize_torch.serving.app import create_app
from personalize_torch.serving.predictor import Predictor
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
