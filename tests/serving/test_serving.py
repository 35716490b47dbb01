"""serve.py's app answers Personalize Runtime's GetRecommendations; an unmodified boto3 client works."""


import boto3
import botocore.exceptions
import pytest
import uvicorn
from tests.conftest import SMALL_DEMO, compose_train_config, serving
from fastapi.testclient import TestClient

from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.http.runtime_handlers import arn_name
from personalize_torch.serving.inference.predictor import Predictor

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/{}"


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


@pytest.fixture(scope="module")
def sims_predictor(tmp_path_factory):
    """SIMS trained on small demo data through training.train (the train.py path)."""
    from personalize_torch.training import train

    cfg = compose_train_config(SMALL_DEMO + ["recipe=sims", "logger=none"], tmp_path_factory.mktemp("sims"))
    return Predictor.from_dir(train(cfg)["solution"])


def item_with_neighbours(predictor: Predictor) -> str:
    idx = int((predictor.recipe.neighbor_idx > 0).sum(1).argmax())
    return predictor.solution.item_vocab.to_id([idx])[0]


def test_arn_name():
    assert arn_name(ARN.format("shop")) == "shop"
    assert arn_name("shop") == "shop"


def test_get_recommendations_shape_and_errors(predictor):
    client = TestClient(create_app({"shop": predictor, "news": predictor}))
    user = predictor.solution.user_vocab.ids[0]
    r = client.post("/recommendations", json={"campaignArn": ARN.format("shop"), "userId": user, "numResults": 5})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"itemList", "recommendationId"} and len(body["itemList"]) == 5
    assert set(body["itemList"][0]) == {"itemId", "score"}
    assert body["itemList"] == [{"itemId": x.item_id, "score": round(x.score, 8)}
                                for x in predictor.recommend([user], 5)[0]]
    missing = client.post("/recommendations", json={"campaignArn": ARN.format("nope"), "userId": user})
    assert missing.status_code == 404 and missing.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    too_many = client.post("/recommendations", json={"campaignArn": ARN.format("shop"), "userId": user,
                                                     "numResults": 501})
    assert too_many.status_code == 400 and "numResults" in too_many.json()["message"]
    assert client.get("/ping").json()["campaigns"] == ["news", "shop"]
    neither = client.post("/recommendations", json={"campaignArn": ARN.format("shop"), "numResults": 5})
    assert neither.status_code == 400 and neither.headers["x-amzn-ErrorType"] == "InvalidInputException"
    assert "userId or itemId" in neither.json()["message"]
    broken = client.post("/recommendations", content=b'{"campaignArn": ', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.headers["x-amzn-ErrorType"] == "InvalidInputException"
    assert broken.headers["content-length"] == str(len(broken.content))


def test_get_recommendations_for_an_item(sims_predictor, predictor):
    client = TestClient(create_app({"similar": sims_predictor, "shop": predictor}))
    item = item_with_neighbours(sims_predictor)
    r = client.post("/recommendations", json={"campaignArn": ARN.format("similar"), "itemId": item, "numResults": 8})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"itemList", "recommendationId"} and len(body["itemList"]) == 8
    assert body["itemList"] == [{"itemId": x.item_id, "score": round(x.score, 8)}
                                for x in sims_predictor.recommend_related([item], 8)[0]]
    assert item not in {x["itemId"] for x in body["itemList"]}
    # The first items are the item's stored neighbours, scoring above 1 (popular fill-ins score at most 1).
    idx = sims_predictor.solution.item_vocab.to_idx([item])[0]
    first = sims_predictor.solution.item_vocab.to_id(sims_predictor.recipe.neighbor_idx[idx, :3].long().numpy())
    assert [x["itemId"] for x in body["itemList"][:3]] == list(first) and body["itemList"][2]["score"] > 1
    # An unknown item gets the popular items; a recipe that is not item-based answers too.
    unknown = client.post("/recommendations", json={"campaignArn": ARN.format("similar"), "itemId": "nope"})
    cold = sims_predictor.recommend(["never-seen-user"], 25)[0]
    assert [x["itemId"] for x in unknown.json()["itemList"]] == [x.item_id for x in cold]
    pop = client.post("/recommendations", json={"campaignArn": ARN.format("shop"), "itemId": item, "numResults": 5})
    assert pop.status_code == 200 and item not in {x["itemId"] for x in pop.json()["itemList"]}


def test_unmodified_boto3_client(predictor, sims_predictor):
    with serving(create_app({"shop": predictor, "similar": sims_predictor})) as url:
        client = boto3.client("personalize-runtime", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        user = predictor.solution.user_vocab.ids[1]
        response = client.get_recommendations(campaignArn=ARN.format("shop"), userId=user, numResults=4)
        assert [x["itemId"] for x in response["itemList"]] == \
            [x.item_id for x in predictor.recommend([user], 4)[0]]
        assert response["recommendationId"].startswith("RID-")
        item = item_with_neighbours(sims_predictor)
        related = client.get_recommendations(campaignArn=ARN.format("similar"), itemId=item, numResults=6)
        assert [x["itemId"] for x in related["itemList"]] == \
            [x.item_id for x in sims_predictor.recommend_related([item], 6)[0]]
        assert item not in {x["itemId"] for x in related["itemList"]}
        with pytest.raises(botocore.exceptions.ClientError) as err:
            client.get_recommendations(campaignArn=ARN.format("shop"), numResults=4)
        assert err.value.response["Error"]["Code"] == "InvalidInputException"
        assert isinstance(err.value, client.exceptions.InvalidInputException)


def test_serve_py_serves_a_solution_with_a_durable_event_store(trained_solution, tmp_path, monkeypatch):
    """`python serve.py solution=<dir> events_db=<file>`: the app it builds answers both APIs, and the
    events it acknowledged are in the file after it stops."""
    import runpy
    import sys

    from tests.conftest import REPO

    from personalize_torch.serving.events.event_store import EventStore

    db = tmp_path / "events.sqlite"
    answers = {}

    def run(app, **_):
        client = TestClient(app)
        event = {"eventType": "click", "itemId": "i1", "sentAt": 1700000000}
        answers["put"] = client.post("/events", json={"trackingId": "t", "userId": "new-user", "sessionId": "s",
                                                      "eventList": [event]}).status_code
        answers["get"] = client.post("/recommendations", json={"campaignArn": ARN.format("any"), "userId": "new-user",
                                                               "numResults": 5}).json()

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(sys, "argv", [str(REPO / "serve.py"), f"solution={trained_solution['solution']}",
                                      f"events_db={db}", f"hydra.run.dir={tmp_path / 'run'}"])
    runpy.run_path(str(REPO / "serve.py"), run_name="__main__")
    assert answers["put"] == 200 and len(answers["get"]["itemList"]) == 5
    assert "i1" not in {x["itemId"] for x in answers["get"]["itemList"]}  # the streamed item is left out
    with EventStore(db) as store:
        assert [(e.user_id, e.item_id) for e in store.user_events("new-user")] == [("new-user", "i1")]
