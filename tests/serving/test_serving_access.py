"""API key (header, bearer token or boto3's access key id), request size limit and one log line per request."""

import json
import logging

import boto3
import botocore.exceptions
import pytest
from fastapi.testclient import TestClient

from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.inference.predictor import Predictor
from tests.conftest import serving

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/{}"


@pytest.fixture(scope="module")
def predictor(trained_solution):
    return Predictor.from_dir(trained_solution["solution"])


def test_api_key_is_required_when_configured(predictor):
    client = TestClient(create_app({"shop": predictor}, api_key="s3cret"))
    body = {"campaignArn": ARN.format("shop"), "userId": predictor.solution.user_vocab.ids[0], "numResults": 3}
    assert client.get("/ping").status_code == 200                                  # health stays open
    refused = client.post("/recommendations", json=body)
    assert refused.status_code == 403 and refused.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    assert client.post("/recommendations", json=body, headers={"x-api-key": "wrong"}).status_code == 403
    assert client.post("/recommendations", json=body, headers={"x-api-key": "s3cret"}).status_code == 200
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=s3cret/20261129/us-east-1/personalize/aws4_request, "
                               "SignedHeaders=host, Signature=abc"}
    assert client.post("/recommendations", json=body, headers=signed).status_code == 200
    assert client.post("/recommendations", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/recommendations", json=body, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.post("/events", json={}, headers={"x-api-key": "nope"}).status_code == 403


def test_unmodified_boto3_client_passes_the_key_as_its_access_key_id(predictor):
    with serving(create_app({"shop": predictor}, api_key="s3cret")) as url:
        def client(key):
            return boto3.client("personalize-runtime", endpoint_url=url, region_name="us-east-1",
                                aws_access_key_id=key, aws_secret_access_key="anything")
        user = predictor.solution.user_vocab.ids[0]
        assert len(client("s3cret").get_recommendations(campaignArn=ARN.format("shop"), userId=user,
                                                         numResults=3)["itemList"]) == 3
        with pytest.raises(botocore.exceptions.ClientError) as err:
            client("other").get_recommendations(campaignArn=ARN.format("shop"), userId=user)
        assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_oversized_request_is_refused_before_parsing(predictor):
    client = TestClient(create_app({"shop": predictor}, max_request_bytes=200))
    response = client.post("/recommendations", json={"campaignArn": ARN.format("shop"), "userId": "u" * 300})
    assert response.status_code == 413 and response.headers["x-amzn-ErrorType"] == "InvalidInputException"
    assert "200" in response.json()["message"]


def test_one_json_log_line_per_request_without_ids_or_keys(predictor, caplog):
    client = TestClient(create_app({"shop": predictor}, api_key="s3cret"))
    user = predictor.solution.user_vocab.ids[0]
    with caplog.at_level(logging.INFO, logger="personalize_torch.access"):
        client.post("/recommendations", json={"campaignArn": ARN.format("shop"), "userId": user},
                    headers={"x-api-key": "s3cret"})
        client.post("/recommendations", json={"campaignArn": ARN.format("shop")}, headers={"x-api-key": "s3cret"})
    records = [r for r in caplog.records if r.name == "personalize_torch.access"]
    assert len(records) == 2
    first, second = (r.fields for r in records)
    assert first["campaign"] == "shop" and first["status"] == 200 and first["path"] == "/recommendations"
    assert first["latency_ms"] > 0 and first["error"] is None and first["operation"] == "GetRecommendations"
    assert first["recommendationId"].startswith("RID-") and first["requestId"] != second["requestId"]
    assert second["status"] == 400 and second["error"] == "InvalidInputException"
    lines = [r.getMessage() + json.dumps(r.fields) for r in records]
    assert not any(user in line or "s3cret" in line for line in lines)
