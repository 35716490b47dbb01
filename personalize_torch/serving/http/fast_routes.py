"""Hot endpoints answered by plain ASGI code, before FastAPI's router.

GetRecommendations is most of a server's traffic, and FastAPI's own work per call (route matching,
dependency solving, the Request object, exception middleware) was a large share of the call's CPU
(bench/RESULTS.md, "GetRecommendations without FastAPI's router"). `add_fast_route` registers such a route
once: `FastRoutes` answers `POST <path>` itself (the body, already read and size-checked by the access
controls outside it, is parsed with the route's pydantic model in one `model_validate_json`; the handler
returns the response's JSON bytes; errors keep the AWS shape), and the same registration lists the route in
FastAPI's router, so the OpenAPI document (/docs) describes it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from personalize_torch.serving.http.errors import ServiceError, invalid_input, validation_message

Handler = Callable[[BaseModel], Awaitable[bytes]]


@dataclass
class FastRoute:
    model: type[BaseModel]
    handler: Handler


def add_fast_route(app: FastAPI, fast_routes: dict[str, FastRoute], path: str, handler: Handler,
                   request_model: type[BaseModel], response_model: type[BaseModel], operation_id: str | None = None,
                   responses: dict[int, dict] | None = None, description: str | None = None) -> None:
    """Register `POST path` once: in `fast_routes` (the table `FastRoutes` answers from) and in `app`'s
    router under the handler's name, with `request_model` as its body and `response_model` as its
    documented response (fields without a value left out, as the handler writes them); `operation_id`,
    `responses` (the error answers) and `description` as FastAPI takes them."""
    fast_routes[path] = FastRoute(request_model, handler)

    async def endpoint(req: BaseModel) -> Response:
        return Response(await handler(req), media_type="application/json")

    # FastAPI reads the body model from the signature: the route's own model, not BaseModel.
    endpoint.__signature__ = inspect.Signature(
        [inspect.Parameter("req", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=request_model)],
        return_annotation=Response)
    app.add_api_route(path, endpoint, methods=["POST"], name=handler.__name__, response_model=response_model,
                      response_model_exclude_none=True, operation_id=operation_id, responses=responses,
                      description=description)


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
            status, headers, body = err.status, err.headers(), err.body()
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
