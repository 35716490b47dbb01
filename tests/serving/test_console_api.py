"""The console's JSON routes (GET /console/api/...), its static shell and the offline API reference, through the
HTTP app: what they answer on a trained solution version, their errors in AWS's shape, and the API key."""

from __future__ import annotations

import json
import re
import shutil
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/{}"


@pytest.fixture(scope="module")
def predictor(trained_solution) -> Predictor:
    return Predictor.from_dir(trained_solution["solution"])


@pytest.fixture(scope="module")
def client(predictor, tmp_path_factory):
    deploy_root = tmp_path_factory.mktemp("deploy_root")
    shutil.copytree(predictor.solution.path, deploy_root / "older")
    info = json.loads((deploy_root / "older" / "solution.json").read_text())
    info["personalize_metrics"]["coverage"] = 0.125
    (deploy_root / "older" / "solution.json").write_text(json.dumps(info))
    (deploy_root / "broken").mkdir()
    (deploy_root / "broken" / "solution.json").write_text("{not json")
    with TestClient(create_app({"shop": predictor, "news": predictor}, deploy_root=deploy_root)) as c:
        yield c


def put_events(client, user_id: str, items: list[str]) -> None:
    now = time.time()
    answer = client.post("/events", json={"trackingId": "t", "userId": user_id, "sessionId": f"s-{user_id}",
                                          "eventList": [{"eventType": "click", "itemId": i, "sentAt": now + k}
                                                        for k, i in enumerate(items)]})
    assert answer.status_code == 200, answer.text


def test_overview_describes_the_campaigns_and_the_data_they_were_trained_on(client, predictor):
    overview = client.get("/console/api/overview").json()
    assert [c["name"] for c in overview["campaigns"]] == ["news", "shop"]
    shop = overview["campaigns"][1]
    info = predictor.solution.info
    assert shop["recipe"] == "popularity_count" and shop["created"] == info["created"]
    assert shop["personalizeMetrics"] == pytest.approx(info["personalize_metrics"])
    group = shop["datasetGroup"]
    rows = {d["name"]: d["rows"] for d in group["datasets"]}
    assert rows["Interactions"] == info["data"]["n_interactions"] and rows["Items"] == len(predictor.solution.items)
    stamps = predictor.solution.histories.timestamp
    assert (group["firstEvent"], group["lastEvent"]) == (stamps.min(), stamps.max())
    assert "GENRES" in group["itemColumns"] and "ITEM_ID" not in group["itemColumns"]
    items_fields = {f["name"]: f for d in group["datasets"] if d["name"] == "Items" for f in d["fields"]}
    assert items_fields["GENRES"]["flags"] == ["categorical"]
    before = overview["storedEvents"]
    put_events(client, "overview-user", ["i1"])
    assert client.get("/console/api/overview").json()["storedEvents"] == before + 1


def test_solution_versions_under_the_roots_with_their_metrics(client, predictor):
    found = client.get("/console/api/solution-versions").json()
    by_path = {v["path"]: v for v in found["solutionVersions"]}
    served = by_path[str(predictor.solution.path.resolve())]
    assert served["campaigns"] == ["news", "shop"]
    older = next(v for p, v in by_path.items() if p.endswith("/older"))
    assert older["campaigns"] == [] and older["metrics"]["coverage"] == 0.125
    assert not [p for p in by_path if p.endswith("/broken")]   # an unreadable solution.json is left out


def test_item_lookup_counts_the_users_who_have_both_items(client, predictor):
    histories = pd.read_parquet(predictor.solution.path / "user_histories.parquet")
    ids = predictor.solution.item_vocab
    users_items = [set(ids.to_id(row).tolist()) for row in histories["ITEM_IDX"]]
    item = "i3"
    with_item = [items for items in users_items if item in items]
    expected = pd.Series([other for items in with_item for other in items if other != item]).value_counts()
    answer = client.get("/console/api/item", params={"campaign": ARN.format("shop"), "itemId": item,
                                                     "limit": 5}).json()
    assert answer["known"] and answer["users"] == len(with_item)
    assert answer["metadata"]["GENRES"] == predictor.solution.items.set_index("ITEM_ID").loc[item, "GENRES"]
    assert [c["users"] for c in answer["coOccurring"]] == expected.iloc[:5].tolist()
    for c in answer["coOccurring"]:
        assert expected[c["itemId"]] == c["users"] and c["metadata"]
    unknown = client.get("/console/api/item", params={"campaign": "shop", "itemId": "no-such-item"}).json()
    assert unknown["known"] is False and unknown["coOccurring"] == []


def test_user_lookup_shows_stored_and_streamed_events_newest_first(client, predictor):
    user = "u7"
    row = int(predictor.solution.history_rows([user])[0])
    stored = predictor.solution.item_vocab.to_id(predictor.solution.histories.items_of(row)).tolist()
    put_events(client, user, ["i2", "i9"])
    answer = client.get("/console/api/user", params={"campaign": "shop", "userId": user, "limit": 500}).json()
    assert answer["known"] and answer["storedEvents"] == len(stored) and answer["streamedEvents"] == 2
    history = answer["history"]
    assert [(e["itemId"], e["source"]) for e in history[:2]] == [("i9", "streamed"), ("i2", "streamed")]
    assert [e["itemId"] for e in history[2:]] == stored[::-1]
    assert history[0]["metadata"]["GENRES"]
    assert [e["timestamp"] for e in history] == sorted((e["timestamp"] for e in history), reverse=True)
    short = client.get("/console/api/user", params={"campaign": "shop", "userId": user, "limit": 3}).json()
    assert [e["itemId"] for e in short["history"]] == [e["itemId"] for e in history[:3]]
    new = client.get("/console/api/user", params={"campaign": "shop", "userId": "nobody"}).json()
    assert (new["known"], new["history"], new["metadata"]) == (False, [], {})


def test_latest_events_newest_first(client):
    put_events(client, "latest-a", ["i4"])
    put_events(client, "latest-b", ["i5", "i6"])
    page = client.get("/console/api/events", params={"limit": 2}).json()
    assert [(e["userId"], e["itemId"]) for e in page["events"]] == [("latest-b", "i6"), ("latest-b", "i5")]
    assert page["total"] == client.get("/console/api/overview").json()["storedEvents"]


@pytest.mark.parametrize(("path", "params", "status", "error_type"), [
    ("/console/api/user", {"campaign": "nope", "userId": "u1"}, 404, "ResourceNotFoundException"),
    ("/console/api/item", {"campaign": "shop", "itemId": "i1", "limit": 0}, 400, "InvalidInputException"),
    ("/console/api/user", {"campaign": "shop", "userId": "a\x00b"}, 400, "InvalidInputException"),
    ("/console/api/user", {"campaign": "shop"}, 400, "InvalidInputException"),
    ("/console/api/ids", {"kind": "sessions"}, 400, "InvalidInputException"),
])
def test_errors_have_the_aws_shape(client, path, params, status, error_type):
    answer = client.get(path, params=params)
    assert answer.status_code == status
    assert answer.json()["__type"] == answer.headers["x-amzn-ErrorType"] == error_type
    assert answer.json()["message"]


def test_id_search_by_prefix(client, predictor):
    params = {"kind": "users", "prefix": "u1", "limit": 5, "campaign": "news"}
    found = client.get("/console/api/ids", params=params).json()["ids"]
    known = [u for u in predictor.solution.user_vocab.ids if u.startswith("u1")]
    assert found == known[:5]
    items = client.get("/console/api/ids", params={"kind": "items", "campaign": "shop"}).json()["ids"]
    assert items == list(predictor.solution.item_vocab.ids[:20])


def test_the_pages_and_the_api_reference_use_only_this_servers_files(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/console/"
    for page in ("/console/", "/docs", "/redoc"):
        answer = client.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        links = re.findall(r'(?:src|href)="([^"#]+)"', answer.text)
        assert links and all(link.startswith("/") for link in links), links
        for link in links:
            assert client.get(link).status_code == 200, link
    assert "Apache License" in client.get("/console/vendor/swagger-ui/LICENSE").text
    assert "MIT" in client.get("/console/vendor/redoc/LICENSE").text


def test_with_an_api_key_the_pages_open_and_the_data_needs_the_key(predictor):
    with TestClient(create_app({"shop": predictor}, api_key="sesame")) as c:
        for page in ("/console/", "/docs", "/redoc", "/console/static/console.js"):
            assert c.get(page).status_code == 200
        for data in ("/console/api/overview", "/console/api/events", "/openapi.json"):
            refused = c.get(data)
            assert refused.status_code == 403
            assert refused.json()["__type"] == "UnrecognizedClientException"
            assert c.get(data, headers={"x-api-key": "sesame"}).status_code == 200
