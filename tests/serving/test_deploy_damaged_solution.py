"""Deploying a damaged solution version (a file missing, cut short or altered since it was written) is
refused with an error naming the file, and the campaign keeps serving what it served; in a server of
several workers, a damaged version recorded in the deployment log is skipped the same way."""

from __future__ import annotations

import shutil
import threading

import pytest
from fastapi.testclient import TestClient

from personalize_torch.serving.events.deployment_log import DeploymentLog
from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/shop"


@pytest.fixture(scope="module")
def served(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


def damage(path, name: str, how: str) -> None:
    target = path / name
    data = target.read_bytes()
    if how == "missing":
        target.unlink()
    elif how == "truncated":
        target.write_bytes(data[: len(data) // 2])
    else:
        at = len(data) // 2
        target.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])


def answer(client, user: str) -> list[str]:
    r = client.post("/recommendations", json={"campaignArn": ARN, "userId": user, "numResults": 5})
    assert r.status_code == 200, r.text
    return [x["itemId"] for x in r.json()["itemList"]]


@pytest.mark.parametrize("name, how", [("model.ckpt", "altered"), ("user_histories.parquet", "truncated"),
                                       ("items.parquet", "missing")])
def test_a_damaged_solution_version_is_refused_and_the_old_one_keeps_serving(served, trained_solution, tmp_path,
                                                                             name, how):
    root = tmp_path / "deploy"
    shutil.copytree(trained_solution["solution"], root / "damaged")
    damage(root / "damaged", name, how)
    user = served.solution.user_vocab.ids[0]
    with TestClient(create_app({"shop": served}, deploy_root=root)) as client:
        before = answer(client, user)
        r = client.put("/campaigns/shop", json={"solution": "damaged"})
        assert r.status_code == 400, r.text
        assert r.headers["x-amzn-ErrorType"] == "InvalidInputException"
        assert r.json()["__type"] == "InvalidInputException" and name in r.json()["message"]
        assert answer(client, user) == before
        shutil.rmtree(root / "damaged")                         # repaired: a good copy deploys
        shutil.copytree(trained_solution["solution"], root / "damaged")
        assert client.put("/campaigns/shop", json={"solution": "damaged"}).status_code == 200
        assert answer(client, user) == before


def test_a_worker_skips_a_damaged_version_another_worker_recorded(served, trained_solution, tmp_path, caplog):
    """Worker b polls the deployment log: the damaged version is logged and skipped, and the next good one is
    served."""
    db = str(tmp_path / "events.db")
    root = tmp_path / "deploy"
    for name in ("damaged", "good"):
        shutil.copytree(trained_solution["solution"], root / name)
    damage(root / "damaged", "model.ckpt", "altered")
    log = DeploymentLog(db)
    start = log.record("shop", trained_solution["solution"], {})
    user = served.solution.user_vocab.ids[0]
    with EventStore(db) as store, TestClient(create_app({"shop": served}, events=store, deploy_root=root,
                                                        deployments=DeploymentLog(db), deployed_version=start,
                                                        worker=1, deploy_poll_seconds=0.05)) as b:
        before = answer(b, user)
        log.record("shop", root / "damaged", {})
        for _ in range(200):
            if any("model.ckpt" in r.getMessage() or (r.exc_info and "model.ckpt" in str(r.exc_info[1]))
                   for r in caplog.records):
                break
            threading.Event().wait(0.05)
        assert any(r.exc_info and "model.ckpt" in str(r.exc_info[1]) for r in caplog.records)
        assert b.app.state.campaigns.get("shop").version == start and answer(b, user) == before
        good = log.record("shop", root / "good", {})
        for _ in range(200):
            if b.app.state.campaigns.get("shop").version == good:
                break
            threading.Event().wait(0.05)
        assert b.app.state.campaigns.get("shop").version == good and answer(b, user) == before
