"""The error answers the OpenAPI document (`GET /openapi.json`, browsable at `GET /docs`) lists for each route.

Every error the server writes has AWS's shape (`errors.ServiceError`): the body {"__type": <AWS error code>,
"message": <text>} (`ErrorBody`) and an `x-amzn-ErrorType` header with the same code, which boto3 turns into
its own exceptions. `error_responses(...)` gives a route's `responses` for the errors it can answer;
`without_422` removes the 422 answer FastAPI lists by default for routes with a body: request bodies that do
not validate are answered 400 InvalidInputException, never 422.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """An error answer's body, in AWS's JSON shape."""

    model_config = ConfigDict(populate_by_name=True)

    type: str = Field(alias="__type", description="The AWS error code, also in the x-amzn-ErrorType header.",
                      examples=["InvalidInputException"])
    message: str = Field(description="What was wrong, for a person to read.",
                         examples=["numResults: Input should be less than or equal to 500"])


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    error_type: str
    when: str


INVALID_INPUT = ErrorAnswer(400, "InvalidInputException", "a field is missing, malformed or out of range, or the "
                                                          "body is not JSON")
UNRECOGNIZED_CLIENT = ErrorAnswer(403, "UnrecognizedClientException", "the server has an API key and the request "
                                                                      "does not carry it")
ACCESS_DENIED = ErrorAnswer(403, "AccessDeniedException", "deploying is disabled (the server has no deploy_root)")
NOT_FOUND = ErrorAnswer(404, "ResourceNotFoundException", "the campaign (campaignArn) or filter (filterArn) "
                                                          "does not exist")
SOLUTION_NOT_FOUND = ErrorAnswer(404, "ResourceNotFoundException", "no solution version at that path under the "
                                                                   "server's deploy_root")
TOO_LARGE = ErrorAnswer(413, "InvalidInputException", "the body is larger than the server's max_request_bytes")
THROTTLED = ErrorAnswer(400, "ThrottlingException", "over the campaign's or the server's configured request rate "
                                                    "(boto3 retries it with backoff)")
INTERNAL_FAILURE = ErrorAnswer(500, "InternalFailure", "the server failed unexpectedly; the message names the "
                                                       "request id it logged the failure under")
STORE_UNAVAILABLE = ErrorAnswer(503, "ServiceUnavailable", "the events database cannot take the write now (full, "
                                                           "locked or unreachable); nothing of the call was stored, "
                                                           "send it again (boto3 retries it with backoff)")

ERROR_TYPE_HEADER = {"x-amzn-ErrorType": {"description": "The AWS error code, as in the body's __type.",
                                          "schema": {"type": "string"}}}


def error_responses(*answers: ErrorAnswer) -> dict[int, dict]:
    """FastAPI `responses` for these error answers: one per status, its description naming each error type."""
    by_status: dict[int, list[ErrorAnswer]] = {}
    for answer in answers:
        by_status.setdefault(answer.status, []).append(answer)
    return {status: {"model": ErrorBody, "headers": ERROR_TYPE_HEADER,
                     "description": "; ".join(f"{a.error_type}: {a.when}" for a in listed)}
            for status, listed in sorted(by_status.items())}


def without_422(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document leave out FastAPI's default 422 answers and their schemas."""
    build = app.openapi

    def openapi() -> dict:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
        return schema

    app.openapi = openapi
