"""AWS-style errors, the shape boto3 reads: an `x-amzn-ErrorType` header and {"__type", "message"}.

Handlers raise `ServiceError`s; the fast routes, the access controls and FastAPI's exception handlers
all write them with `ServiceError`'s own methods, so the shape is written in one place. What no handler
raises is written in that shape too: an unknown path or a method a path does not take
(`UnknownOperationException`, 404 / 405, `http_status_error`), and any unexpected failure
(`InternalFailure`, 500, with a message that names the request id and nothing of the server's internals).
"""

from __future__ import annotations

import json

from starlette.responses import Response


class ServiceError(Exception):
    """An AWS-style error: its type (`__type`, the `x-amzn-ErrorType` header), message and HTTP status."""

    def __init__(self, error_type: str, message: str, status: int):
        super().__init__(message)
        self.error_type, self.message, self.status = error_type, message, status

    def body(self) -> bytes:
        return json.dumps({"__type": self.error_type, "message": self.message}).encode()

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"content-type", b"application/json"), (b"x-amzn-errortype", self.error_type.encode())]

    def response(self) -> Response:
        return Response(self.body(), status_code=self.status, media_type="application/json",
                        headers={"x-amzn-ErrorType": self.error_type})


def invalid_input(message: str) -> ServiceError:
    return ServiceError("InvalidInputException", message, 400)


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", message, 404)


def access_denied(message: str) -> ServiceError:
    return ServiceError("AccessDeniedException", message, 403)


def service_unavailable(message: str) -> ServiceError:
    """AWS's common ServiceUnavailable (503): the server cannot do the call now, the caller may send it again.
    boto3 retries 503s (with backoff) before it raises, as it does for AWS's own."""
    return ServiceError("ServiceUnavailable", message, 503)


def throttled(message: str) -> ServiceError:
    """Over a configured request rate: HTTP 400 ThrottlingException, which boto3 retries with backoff."""
    return ServiceError("ThrottlingException", message, 400)


def internal_failure(request_id: str | None = None) -> ServiceError:
    """An unexpected failure: HTTP 500 InternalFailure, naming the request id the server logged it under."""
    logged = f" (request id {request_id}); it is logged under that id" if request_id else ""
    return ServiceError("InternalFailure", f"the server could not answer this request{logged}", 500)


MAX_ECHOED_PATH = 256


def http_status_error(status: int, detail: object, method: str, path: str) -> ServiceError:
    """An HTTP error raised by the router or by request parsing (not by a handler) as an AWS error: 404 and 405
    (no operation at that method and path) are UnknownOperationException, other 4xx InvalidInputException,
    5xx InternalFailure."""
    if status in (404, 405):
        shown = path if len(path) <= MAX_ECHOED_PATH else path[:MAX_ECHOED_PATH] + "..."
        return ServiceError("UnknownOperationException", f"{method} {shown} is not an operation of this server "
                            "(see GET /openapi.json)", status)
    if status < 500:
        message = detail if isinstance(detail, str) and detail else "the request is malformed"
        if message == "There was an error parsing the body":
            message = "the body is not JSON (UTF-8)"
        return ServiceError("InvalidInputException", message, status)
    return ServiceError("InternalFailure", "the server could not answer this request", status)


def validation_message(errors: list[dict]) -> str:
    """The first pydantic error as `field.path: message` (what FastAPI's validation errors become too)."""
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where or 'the request body'}: {first.get('msg')}"
