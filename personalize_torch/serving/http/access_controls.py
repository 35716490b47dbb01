"""Who may call the server, how big a request may be, and what is reported about each request.

- API keys (`api_key` in serve.yaml, or the PERSONALIZE_TORCH_API_KEY environment variable, and/or
  `api_keys_file`, re-read when it changes: see `api_keys`): when set, every call but `GET /ping` (`GET
  /metrics` included) must carry one, as an `x-api-key` header, as a bearer token (`Authorization: Bearer
  <key>`, what Prometheus' `authorization` scrape setting sends) or as the access key id of the AWS SigV4
  `Authorization` header, so an unmodified boto3 client works by being configured with
  `aws_access_key_id=<the key>` (the signature itself is not checked: TLS and the key are the protection). A
  missing or wrong key is a 403 `UnrecognizedClientException` in the AWS error shape. Keys are compared in
  constant time and never logged.
- Request size: a body over `max_request_bytes` is refused with a 413 `InvalidInputException` before
  it is read or parsed.
- Throttling: PutEvents calls over the server's `put_events_per_second` are answered 400 ThrottlingException
  (see `throttling`; campaigns' limits are applied where the campaign is known, in `runtime_handlers`).
- Failures: an exception no handler turned into an answer is logged (with the request id) and answered 500
  `InternalFailure` in the AWS shape, with nothing of the exception in the message.
- Reports: every request gets a request id (the `x-amzn-RequestId` response header, which boto3 shows as
  ResponseMetadata's RequestId) and a `RequestRecord`; when it is answered, one log line on the
  `personalize_torch.access` logger (its fields: requestId, method, path, operation, campaign, HTTP status,
  error type, latency in ms, recommendationId; no ids, filter values, keys or bodies) and the server's
  metrics (`ServerMetrics.request_done`).
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid

from fastapi import FastAPI
from starlette.responses import Response

from personalize_torch.serving.http.api_keys import ApiKeys
from personalize_torch.serving.http.errors import ServiceError, internal_failure, throttled
from personalize_torch.serving.http.request_record import (
    RequestRecord,
    end_request,
    operation_name,
    start_request,
)
from personalize_torch.serving.http.server_metrics import ServerMetrics
from personalize_torch.serving.http.throttling import Throttles

log = logging.getLogger("personalize_torch.access")
failures = logging.getLogger(__name__)

_SIGV4_KEY = re.compile(rb"Credential=([^/,\s]+)/")
_BEARER = b"bearer "
_CAMPAIGN = re.compile(rb'"(?:campaignArn|recommenderArn)"\s*:\s*"([^"]{1,512})"')
OPEN_PATHS = frozenset({"/ping"})


def _error(error_type: str, message: str, status: int) -> Response:
    return ServiceError(error_type, message, status).response()


def presented_key(headers: dict[bytes, bytes]) -> bytes | None:
    """The key a request carries: the x-api-key header, else a bearer token, else the SigV4 Authorization's
    access key id."""
    header = headers.get(b"x-api-key")
    if header:
        return header
    authorization = headers.get(b"authorization", b"")
    if authorization[:len(_BEARER)].lower() == _BEARER:
        return authorization[len(_BEARER):].strip() or None
    match = _SIGV4_KEY.search(authorization)
    return match.group(1) if match else None


class AccessControls:
    """A plain ASGI middleware: Starlette's BaseHTTPMiddleware (`@app.middleware("http")`) costs far more
    CPU per request in task groups and body streams (bench/RESULTS.md, "Serving with micro-batching")."""

    def __init__(self, app, keys: ApiKeys | None = None, max_request_bytes: int = 1_000_000,
                 metrics: ServerMetrics | None = None, throttles: Throttles | None = None):
        self.app, self.keys, self.max_request_bytes, self.metrics = app, keys or ApiKeys(), max_request_bytes, metrics
        self.throttles = throttles or Throttles()
        # Request ids in a UUID's shape: a random prefix per server process, then a counter (uuid4 per request
        # reads the OS's randomness each time, several microseconds).
        random = uuid.uuid4().hex
        self._id_prefix = f"{random[:8]}-{random[8:12]}-{random[12:16]}-{random[16:20]}-"
        self._ids = itertools.count()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        record = RequestRecord(f"{self._id_prefix}{next(self._ids):012x}", method, path, operation_name(method, path))
        request_id = (b"x-amzn-requestid", record.request_id.encode())

        started = False

        async def reported_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                declared = None
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-amzn-errortype":
                        declared = value.decode(errors="replace")
                record.respond(message["status"], declared)
                message = {**message, "headers": [*message.get("headers", ()), request_id]}
            await send(message)

        token = start_request(record)
        try:
            await self._handle(scope, receive, reported_send, record)
        except Exception:
            failures.exception("request %s (%s %s) failed", record.request_id, method, path,
                               extra={"fields": {"requestId": record.request_id, "operation": record.operation}})
            if started:   # part of an answer is out: nothing else can be sent on this connection
                raise
            await internal_failure(record.request_id).response()(scope, receive, reported_send)
        finally:
            end_request(token)
            self._report(record)

    def _report(self, record: RequestRecord) -> None:
        seconds = record.seconds()
        if self.metrics is not None:
            self.metrics.request_done(record, seconds)
        if log.isEnabledFor(logging.INFO):
            log.info("%s %s %d", record.method, record.path, record.status,
                     extra={"fields": record.log_fields(seconds)})

    async def _handle(self, scope, receive, send, record: RequestRecord) -> None:
        headers = dict(scope["headers"])
        if self.keys.required and scope["path"] not in OPEN_PATHS:
            if not self.keys.accepts(presented_key(headers)):
                await _error("UnrecognizedClientException",
                             "The security token included in the request is invalid: send the server's "
                             "API key as x-api-key, as a bearer token or as the client's aws_access_key_id",
                             403)(scope, receive, send)
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
        if record.operation == "PutEvents" and not self.throttles.admit_put_events():
            await throttled(f"PutEvents: over the server's limit of {self.throttles.settings.put_events_per_second:g} "
                            "calls per second; retry with backoff").response()(scope, receive, send)
            return
        body = b"".join(chunks)
        match = _CAMPAIGN.search(body)
        if match:
            record.asked_campaign = match.group(1).decode(errors="replace").rstrip("/").rsplit("/", 1)[-1]
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


def install_access_controls(app: FastAPI, keys: ApiKeys | None = None, max_request_bytes: int = 1_000_000,
                            metrics: ServerMetrics | None = None, throttles: Throttles | None = None) -> None:
    """Add the API-key check, the request size limit, PutEvents' throttling, the answer to unexpected failures,
    the access log and the request metrics to `app`."""
    app.add_middleware(AccessControls, keys=keys, max_request_bytes=max_request_bytes, metrics=metrics,
                       throttles=throttles)
