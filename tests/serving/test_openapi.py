"""The OpenAPI document (`GET /openapi.json`, `GET /docs`) describes what the server answers: each operation under
its API name, the AWS-shaped errors it returns (and no 422, which it never returns), and every field."""

import pytest
from fastapi.testclient import TestClient

from personalize_torch.serving.http.app import create_app
from personalize_torch.serving.http.request_record import OTHER, operation_name
from personalize_torch.serving.inference.predictor import Predictor

ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/{}"


@pytest.fixture(scope="module")
def client(trained_solution):
    return TestClient(create_app({"shop": Predictor.from_dir(trained_solution["solution"])}))


@pytest.fixture(scope="module")
def document(client):
    return client.get("/openapi.json").json()


def error_schema(document: dict, path: str, method: str, status: str) -> dict:
    response = document["paths"][path][method]["responses"][status]
    assert "x-amzn-ErrorType" in response["headers"]
    ref = response["content"]["application/json"]["schema"]["$ref"]
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_errors_are_listed_with_the_shape_the_server_writes(client, document):
    for path in ("/recommendations", "/personalize-ranking"):
        responses = document["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "400", "403", "404", "413", "500"}
        assert "InvalidInputException" in responses["400"]["description"]
        assert "ThrottlingException" in responses["400"]["description"]
        assert "InternalFailure" in responses["500"]["description"]
        assert "ResourceNotFoundException" in responses["404"]["description"]
        for status in ("400", "404"):
            schema = error_schema(document, path, "post", status)
            assert set(schema["properties"]) == set(schema["required"]) == {"__type", "message"}
    for path in ("/events", "/items", "/users"):
        responses = document["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "400", "403", "413", "500", "503"}
        assert "ServiceUnavailable" in responses["503"]["description"]   # the events database cannot take it
    assert "AccessDeniedException" in document["paths"]["/campaigns/{name}"]["put"]["responses"]["403"]["description"]
    assert not [p for p, ops in document["paths"].items() for op in ops.values() if "422" in op["responses"]]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    # What the server really writes has that shape and header.
    for body, status in (({"campaignArn": ARN.format("shop")}, 400), ({"campaignArn": ARN.format("shop"),
                                                                       "numResults": "many"}, 400)):
        answer = client.post("/recommendations", json=body)
        assert answer.status_code == status and set(answer.json()) == {"__type", "message"}
        assert answer.json()["__type"] == answer.headers["x-amzn-ErrorType"] == "InvalidInputException"


def test_operations_are_named_as_the_api_names_them(client, document):
    ids = {(method.upper(), path): op["operationId"] for path, ops in document["paths"].items()
           for method, op in ops.items()}
    assert ids[("POST", "/recommendations")] == "GetRecommendations"
    assert ids[("POST", "/events")] == "PutEvents"
    assert ids[("GET", "/metrics")] == "Metrics"
    for (method, path), operation_id in ids.items():   # the access log's and the metrics' operation
        assert operation_name(method, path.replace("{name}", "shop")) == operation_id != OTHER
    assert client.get("/docs").status_code == 200


def test_every_request_and_response_field_is_described(document):
    schemas = document["components"]["schemas"]
    undescribed = [f"{name}.{field}" for name, schema in schemas.items()
                   for field, spec in schema.get("properties", {}).items() if not spec.get("description")]
    assert undescribed == []
    assert "numResults" in schemas["GetRecommendationsRequest"]["properties"]
