"""What a client controls is bounded and checked: Personalize's bounds on every field (InvalidInputException naming
the field), deploy paths that cannot leave deploy_root, and every error the server can answer in AWS's shape
(unknown paths, wrong methods, bodies that do not parse, unexpected failures)."""

import json
import logging
import shutil

import pytest
from fastapi.testclient import TestClient

from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/shop"
FILTER_ARN = "arn:aws:personalize:us-east-1:123456789012:filter/no_ids"


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


@pytest.fixture(scope="module")
def client(predictor):
    from personalize_torch.filters import Filter

    return TestClient(create_app({"shop": predictor},
                                 filters={"no_ids": Filter.parse("EXCLUDE ItemID WHERE Items.ITEM_ID IN ($IDS)")}))


def assert_aws_error(response, status: int, error_type: str, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"__type", "message"} and body["__type"] == error_type
    assert response.headers["x-amzn-ErrorType"] == error_type and response.headers["x-amzn-RequestId"]
    for word in words:
        assert word in body["message"], body["message"]
    return body["message"]


def event(**fields) -> dict:
    return {"eventType": "click", "sentAt": 1.7e9, "itemId": "i1", **fields}


@pytest.mark.parametrize("path, body, field", [
    ("/recommendations", {"numResults": 501}, "numResults"),
    ("/recommendations", {"userId": "u" * 257}, "userId"),
    ("/recommendations", {"campaignArn": ARN + "x" * 256}, "campaignArn"),
    ("/recommendations", {"filterArn": FILTER_ARN, "filterValues": {f"P{i}": '"a"' for i in range(26)}},
     "filterValues"),
    ("/recommendations", {"filterArn": FILTER_ARN, "filterValues": {"IDS": '"' + "a" * 1000 + '"'}}, "filterValues"),
    ("/recommendations", {"filterArn": FILTER_ARN, "filterValues": {"not a name": '"a"'}}, "filterValues"),
    ("/recommendations", {"context": {f"F{i}": "x" for i in range(151)}}, "context"),
    ("/recommendations", {"context": {"DEVICE": "x" * 1001}}, "context"),
    ("/recommendations", {"metadataColumns": {"ITEMS": [f"c{i}" for i in range(100)]}}, "metadataColumns"),
    ("/recommendations", {"promotions": [{"name": "a", "percentPromotedItems": 10}] * 2}, "promotions"),
    ("/personalize-ranking", {"inputList": ["i"] * 501}, "inputList"),
    ("/personalize-ranking", {"inputList": ["i" * 257]}, "inputList"),
])
def test_runtime_bounds_are_personalizes(client, path, body, field):
    request = {"campaignArn": ARN, "userId": "u1", **({"inputList": ["i1"]} if path == "/personalize-ranking" else {}),
               **body}
    assert_aws_error(client.post(path, json=request), 400, "InvalidInputException", field)


@pytest.mark.parametrize("body, field", [
    ({"eventList": []}, "eventList"),
    ({"eventList": [event()] * 11}, "eventList"),
    ({"eventList": [event(properties=json.dumps({"k": "v" * 1100}))]}, "properties"),
    ({"eventList": [event(impression=["i"] * 26)]}, "impression"),
    ({"eventList": [event(recommendationId="R" * 41)]}, "recommendationId"),
    ({"eventList": [event(itemId="i" * 257)]}, "itemId"),
    ({"sessionId": "s" * 257}, "sessionId"),
])
def test_put_events_bounds_are_personalizes(client, body, field):
    request = {"trackingId": "t", "sessionId": "s", "userId": "u1", "eventList": [event()], **body}
    assert_aws_error(client.post("/events", json=request), 400, "InvalidInputException", field)


def test_put_items_and_users_bounds(client):
    arn = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
    too_many = [{"itemId": f"i{i}"} for i in range(11)]
    assert_aws_error(client.post("/items", json={"datasetArn": arn, "items": too_many}), 400,
                     "InvalidInputException", "items")
    deep = "[" * 20_000 + "]" * 20_000    # under the 32,000-character bound, nested past what a JSON reader follows
    assert_aws_error(client.post("/items", json={"datasetArn": arn, "items": [{"itemId": "i", "properties": deep}]}),
                     400, "InvalidInputException", "properties")
    assert_aws_error(client.post("/users", json={"datasetArn": arn, "users": [{"userId": "u", "properties": deep}]}),
                     400, "InvalidInputException", "properties")


def test_every_error_is_in_the_aws_shape(client):
    assert_aws_error(client.get("/no-such-operation"), 404, "UnknownOperationException", "/no-such-operation")
    wrong = client.get("/recommendations")
    assert_aws_error(wrong, 405, "UnknownOperationException", "GET /recommendations")
    assert "POST" in wrong.headers["allow"]
    assert_aws_error(client.post("/events", content=b"\xff\xfe not utf-8"), 400, "InvalidInputException")
    assert_aws_error(client.post("/personalize-ranking", content=b"{"), 400, "InvalidInputException")
    assert_aws_error(client.post("/recommendations", content=b"[" * 100_000), 400, "InvalidInputException")
    assert_aws_error(client.post("/events", content=b"[" * 100_000), 400, "InvalidInputException")


def test_unexpected_failures_are_500_internal_failure_with_the_request_id(predictor, caplog):
    app = create_app({"shop": predictor})
    client = TestClient(app)

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals /var/lib/db")

    app.state.events.put_events = broken           # a FastAPI route
    app.state.events.user_event_columns = broken    # read by GetRecommendations, the fast route
    with caplog.at_level(logging.ERROR):
        for path, body in [("/events", {"trackingId": "t", "sessionId": "s", "eventList": [event()]}),
                           ("/recommendations", {"campaignArn": ARN, "userId": "u1"})]:
            answer = client.post(path, json=body)
            message = assert_aws_error(answer, 500, "InternalFailure", answer.headers["x-amzn-RequestId"])
            assert "secret" not in message and "RuntimeError" not in message
            logged = [r for r in caplog.records if answer.headers["x-amzn-RequestId"] in r.getMessage()]
            assert logged and logged[0].exc_info is not None      # the traceback is in the server's log
    assert client.get("/ping").status_code == 200                  # and the server goes on answering


@pytest.fixture
def deploy_tree(trained_solution, tmp_path):
    """deploy_root with a solution version in it ("good"), one outside it, and links from inside to outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    shutil.copytree(trained_solution["solution"], root / "good")
    shutil.copytree(trained_solution["solution"], outside / "solution")
    (root / "link_to_outside").symlink_to(outside / "solution", target_is_directory=True)
    shutil.copytree(trained_solution["solution"], root / "file_link")
    (root / "file_link" / "solution.json").unlink()
    (root / "file_link" / "solution.json").symlink_to(outside / "solution" / "solution.json")
    return root, outside


def test_deploy_paths_cannot_leave_deploy_root(predictor, deploy_tree):
    root, outside = deploy_tree
    client = TestClient(create_app({"shop": predictor}, deploy_root=root))
    for solution in ("../outside/solution", "good/../../outside/solution", str(outside / "solution"), "/etc",
                     "link_to_outside", "file_link", "good\x00"):
        answer = client.put("/campaigns/shop", json={"solution": solution})
        assert_aws_error(answer, 400, "InvalidInputException", "deploy_root")
    assert_aws_error(client.put("/campaigns/shop", json={"solution": "missing"}), 404, "ResourceNotFoundException",
                     "missing")
    assert_aws_error(client.put("/campaigns/shop", json={"solution": "x" * 1000}), 400, "InvalidInputException")
    assert_aws_error(client.put("/campaigns/bad%20name", json={"solution": "good"}), 400, "InvalidInputException",
                     "name")
    assert_aws_error(client.put("/campaigns/%2E%2E", json={"solution": "good"}), 400, "InvalidInputException",
                     "name")
    for name in ("..%2Fetc", "%2E%2E%2F%2E%2E%2Fetc"):   # a name with a slash reaches no operation
        assert_aws_error(client.put(f"/campaigns/{name}", json={"solution": "good"}), 404,
                         "UnknownOperationException")
    assert client.get("/ping").json()["campaigns"] == ["shop"]     # nothing was deployed


def test_deploying_is_off_unless_deploy_root_is_set(predictor, deploy_tree):
    root, _ = deploy_tree
    client = TestClient(create_app({"shop": predictor}))
    assert_aws_error(client.put("/campaigns/shop", json={"solution": str(root / "good")}), 403,
                     "AccessDeniedException", "deploy_root")
    from pathlib import Path

    from omegaconf import OmegaConf

    from personalize_torch.configs import __file__ as configs_init

    assert OmegaConf.load(Path(configs_init).parent / "serve.yaml").deploy_root is None
