"""Who may call the server, how big a request may be, and one structured log line per request.

- API key (`api_key` in serve.yaml, or the PERSONALIZE_TORCH_API_KEY environment variable): when set,
  every call but `GET /ping` must carry it, either as an `x-api-key` header or as the access key id of
  the AWS SigV4 `Authorization` header, so an unmodified boto3 client works by being configured with
  `aws_access_key_id=<the key>` (the signature itself is not checked: TLS and the key are the
  protection). A missing or wrong key is a 403 `UnrecognizedClientException` in the AWS error shape.
  Keys are compared in constant time and never logged.
- Request size: a body over `max_request_bytes` is refused with a 413 `InvalidInputException` before
  it is read or parsed.
- Logs: one JSON line per request on the `personalize_torch.access` logger: method, path, campaign (the
  last segment of campaignArn when the body names one), HTTP status, error type and latency in ms.
  No ids, filter values, keys or bodies.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time

from fastapi import FastAPI
from starlette.responses import Response

from personalize_torch.serving.http.errors import ServiceError

log = logging.getLogger("personalize_torch.access")

_SIGV4_KEY = re.compile(rb"Credential=([^/,\s]+)/")
_CAMPAIGN = re.compile(rb'"(?:campaignArn|recommenderArn)"\s*:\s*"([^"]{1,512})"')
OPEN_PATHS = frozenset({"/ping"})


def _error(error_type: str, message: str, status: int) -> Response:
    return ServiceError(error_type, message, status).response()


def presented_key(headers: dict[bytes, bytes]) -> bytes | None:
    """The key a request carries: the x-api-key header, else the SigV4 Authorization's access key id."""
    header = headers.get(b"x-api-key")
    if header:
        return header
    match = _SIGV4_KEY.search(headers.get(b"authorization", b""))
    return match.group(1) if match else None


class AccessControls:
    """A plain ASGI middleware: Starlette's BaseHTTPMiddleware (`@app.middleware("http")`) costs far more
    CPU per request in task groups and body streams (bench/RESULTS.md, "Serving with micro-batching")."""

    def __init__(self, app, api_key: str | None = None, max_request_bytes: int = 1_000_000):
        self.app, self.api_key, self.max_request_bytes = app, api_key, max_request_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = {"status": 500, "error": "InternalError", "campaign": None}

        async def logged_send(message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["error"] = message["status"], None
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-amzn-errortype":
                        state["error"] = value.decode(errors="replace")
            await send(message)

        try:
            await self._handle(scope, receive, logged_send, state)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(json.dumps({
                    "method": scope["method"], "path": scope["path"], "campaign": state["campaign"],
                    "status": state["status"], "error": state["error"],
                    "latency_ms": round((time.perf_counter() - start) * 1000, 3)}))

    async def _handle(self, scope, receive, send, state: dict) -> None:
        headers = dict(scope["headers"])
        if self.api_key and scope["path"] not in OPEN_PATHS:
            key = presented_key(headers)
            if key is None or not hmac.compare_digest(key, self.api_key.encode()):
                await _error("UnrecognizedClientException",
                             "The security token included in the request is invalid: send the server's "
                             "API key as x-api-key or as the client's aws_access_key_id", 403)(scope, receive, send)
                return
        length = headers.get(b"content-length", b"").decode(errors="replace")
        if length.isdigit() and int(length) > self.max_request_bytes:
            await self._too_big(length, scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:   # read the body here (bounded), so a chunked upload cannot exceed the limit either
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_request_bytes:
                await self._too_big(size, scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        match = _CAMPAIGN.search(body)
        if match:
            state["campaign"] = match.group(1).decode(errors="replace").rstrip("/").rsplit("/", 1)[-1]
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_big(self, size, scope, receive, send) -> None:
        await _error("InvalidInputException", f"the request body has {size} bytes; the limit is "
                     f"{self.max_request_bytes}", 413)(scope, receive, send)


def install_access_controls(app: FastAPI, api_key: str | None = None, max_request_bytes: int = 1_000_000) -> None:
    """Add the API-key check, the request size limit and the access log to `app`."""
    app.add_middleware(AccessControls, api_key=api_key, max_request_bytes=max_request_bytes)
