"""AWS-style errors, the shape boto3 reads: an `x-amzn-ErrorType` header and {"__type", "message"}.

Handlers raise `ServiceError`s; the fast routes, the access controls and FastAPI's exception handlers
all write them with `ServiceError`'s own methods, so the shape is written in one place.
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


def validation_message(errors: list[dict]) -> str:
    """The first pydantic error as `field.path: message` (what FastAPI's validation errors become too)."""
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg')}"
