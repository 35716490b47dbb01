"""Hot endpoints answered by plain ASGI code, before FastAPI's router.

GetRecommendations is most of a server's traffic. Through FastAPI a call spent ~0.7 ms of CPU on the
framework (route matching, dependency solving, the Request object, exception middleware; measured on
Beauty's User-Personalization model, one core), about a quarter of the whole call. `FastRoutes` answers
`POST <path>` itself: the body (already read and size-checked by `access.AccessControls`, which stays
outside it) is parsed with the route's pydantic model in one `model_validate_json`, the handler returns
the response's JSON bytes, and errors keep the AWS JSON shape that boto3 reads. The FastAPI routes stay
registered for the OpenAPI schema (/docs) and share the handlers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from starlette.responses import Response

Handler = Callable[[BaseModel], Awaitable[bytes]]


@dataclass
class FastRoute:
    model: type[BaseModel]
    handler: Handler


class ServiceError(Exception):
    """An AWS-style error: its type (`__type`, the `x-amzn-ErrorType` header) and message. The one place
    that shape is written: `body`, `headers` and `response` serve the access controls, FastAPI's
    exception handlers and the fast routes alike."""

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


def validation_message(errors: list[dict]) -> str:
    """The first pydantic error as `field.path: message` (what FastAPI's validation errors become too)."""
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg')}"


def error_body(err: ServiceError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return err.status, err.headers(), err.body()


class FastRoutes:
    """ASGI middleware: `routes` maps POST paths to (request model, handler); other requests pass on."""

    def __init__(self, app, routes: dict[str, FastRoute]):
        self.app, self.routes = app, routes

    async def __call__(self, scope, receive, send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status, headers = 200, [(b"content-type", b"application/json")]
        try:
            try:
                request = route.model.model_validate_json(b"".join(chunks))
            except ValidationError as err:
                raise invalid_input(validation_message(err.errors())) from None
            body = await route.handler(request)
        except ServiceError as err:
            status, headers, body = error_body(err)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
