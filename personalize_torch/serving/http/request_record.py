"""What the server reports about one request (its access log line and its metrics): `RequestRecord`.

The access controls (the outermost middleware) start a record for every request (`start_request`) and finish
it with the response's status and error type; while the request runs, the handlers add to it what only they
know: the campaign that answered (`note_campaign`) and the recommendationId they made
(`note_recommendation_id`). The record is a context variable, so it reaches the handler whether it runs on
the event loop (the fast route) or in FastAPI's thread pool. It holds no user or item ids, keys or bodies.

`operation_name` names a request after the API operation its method and path reach (GetRecommendations,
PutEvents, ...): the `operation` of log lines and metrics, and the operationId of each route in the OpenAPI
document (routes.py), so the three agree.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from http import HTTPStatus

OPERATIONS = {
    ("POST", "/recommendations"): "GetRecommendations",
    ("POST", "/personalize-ranking"): "GetPersonalizedRanking",
    ("POST", "/events"): "PutEvents",
    ("POST", "/items"): "PutItems",
    ("POST", "/users"): "PutUsers",
    ("GET", "/ping"): "Ping",
    ("GET", "/metrics"): "Metrics",
    # the web console's read-only JSON (serving/console/api_routes.py)
    ("GET", "/console/api/overview"): "ConsoleOverview",
    ("GET", "/console/api/solution-versions"): "ConsoleSolutionVersions",
    ("GET", "/console/api/item"): "ConsoleItem",
    ("GET", "/console/api/user"): "ConsoleUser",
    ("GET", "/console/api/events"): "ConsoleEvents",
    ("GET", "/console/api/ids"): "ConsoleIds",
}
DEPLOY_PREFIX = "/campaigns/"   # PUT /campaigns/{name}
OTHER = "Other"                 # any other method and path (the OpenAPI pages, unknown paths)


def operation_name(method: str, path: str) -> str:
    """The API operation a request's method and path reach: one of OPERATIONS' names, DeployCampaign, or OTHER."""
    name = OPERATIONS.get((method, path))
    if name is not None:
        return name
    if method == "PUT" and path.startswith(DEPLOY_PREFIX) and "/" not in path[len(DEPLOY_PREFIX):]:
        return "DeployCampaign"
    return OTHER


def error_type(status: int, declared: str | None) -> str | None:
    """A response's error type: the AWS error code it declares (x-amzn-ErrorType), else, for an error status
    without one, InternalFailure (5xx) or the status's name (`NotFound`, `MethodNotAllowed`); None for success."""
    if declared:
        return declared
    if status < 400:
        return None
    if status >= 500:
        return "InternalFailure"
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return f"HTTP{status}"


@dataclass
class RequestRecord:
    """One request as the access log and the metrics see it. `asked_campaign`: the last segment of the
    campaignArn / recommenderArn its body names; `campaign`: the campaign that answered (set by the handler,
    None when none did); `status` and `error` start as an internal failure, in case no response is sent."""

    request_id: str
    method: str
    path: str
    operation: str
    started: float = field(default_factory=time.perf_counter)
    asked_campaign: str | None = None
    campaign: str | None = None
    status: int = 500
    error: str | None = "InternalFailure"
    recommendation_id: str | None = None

    def respond(self, status: int, declared_error: str | None) -> None:
        self.status, self.error = status, error_type(status, declared_error)

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def log_fields(self, seconds: float) -> dict:
        """The access log line's fields: no user or item ids, keys, filter values or bodies."""
        fields = {"requestId": self.request_id, "method": self.method, "path": self.path,
                  "operation": self.operation, "campaign": self.campaign or self.asked_campaign,
                  "status": self.status, "error": self.error, "latency_ms": round(seconds * 1000, 3)}
        if self.recommendation_id is not None:
            fields["recommendationId"] = self.recommendation_id
        return fields


_CURRENT: ContextVar[RequestRecord | None] = ContextVar("personalize_torch_request", default=None)


def start_request(record: RequestRecord):
    """Make `record` the current request's (in this context and the tasks and threads it starts); a token
    for `end_request`."""
    return _CURRENT.set(record)


def end_request(token) -> None:
    _CURRENT.reset(token)


def note_campaign(name: str) -> None:
    """The campaign that answers the current request (its metrics' `campaign` label)."""
    record = _CURRENT.get()
    if record is not None:
        record.campaign = name


def note_recommendation_id(recommendation_id: str) -> None:
    """The recommendationId of the current request's answer (its access log line's)."""
    record = _CURRENT.get()
    if record is not None:
        record.recommendation_id = recommendation_id
