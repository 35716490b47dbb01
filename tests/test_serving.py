"""serve.py's app answers Personalize Runtime's GetRecommendations; an unmodified boto3 client works."""

import socket
import threading
import time

import boto3
import botocore.exceptions
import pytest
import uvicorn
from fastapi.testclient import TestClient

from personalize_torch.serving.app import arn_name, create_app
from personalize_torch.serving.predictor import Predictor

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/{}"


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unmodified_boto3_client(predictor):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app({"shop": predictor}), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        client = boto3.client("personalize-runtime", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        user = predictor.solution.user_vocab.ids[1]
        response = client.get_recommendations(campaignArn=ARN.format("shop"), userId=user, numResults=4)
        assert [x["itemId"] for x in response["itemList"]] == \
            [x.item_id for x in predictor.recommend([user], 4)[0]]
        assert response["recommendationId"].startswith("RID-")
        with pytest.raises(botocore.exceptions.ClientError) as err:
            client.get_recommendations(campaignArn=ARN.format("shop"), numResults=4)
        assert err.value.response["Error"]["Code"] == "InvalidInputException"
        assert isinstance(err.value, client.exceptions.InvalidInputException)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
