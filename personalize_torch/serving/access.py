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

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger("personalize_torch.access")

_SIGV4_KEY = re.compile(r"Credential=([^/,\s]+)/")
_CAMPAIGN = re.compile(rb'"(?:campaignArn|recommenderArn)"\s*:\s*"([^"]{1,512})"')
OPEN_PATHS = frozenset({"/ping"})


def _error(error_type: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"__type": error_type, "message": message}, status_code=status,
                        headers={"x-amzn-ErrorType": error_type})


def presented_key(request: Request) -> str | None:
    """The key a request carries: the x-api-key header, else the SigV4 Authorization's access key id."""
    header = request.headers.get("x-api-key")
    if header:
        return header
    match = _SIGV4_KEY.search(request.headers.get("authorization", ""))
    return match.group(1) if match else None


def install_access_controls(app: FastAPI, api_key: str | None = None, max_request_bytes: int = 1_000_000) -> None:
    """Add the API-key check, the request size limit and the access log to `app`."""

    @app.middleware("http")
    async def access(request: Request, call_next):
        start = time.perf_counter()
        campaign = None
        response = None
        try:
            if api_key and request.url.path not in OPEN_PATHS:
                key = presented_key(request)
                if key is None or not hmac.compare_digest(key.encode(), api_key.encode()):
                    response = _error("UnrecognizedClientException",
                                      "The security token included in the request is invalid: send the server's "
                                      "API key as x-api-key or as the client's aws_access_key_id", 403)
                    return response
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > max_request_bytes:
                response = _error("InvalidInputException",
                                  f"the request body has {length} bytes; the limit is {max_request_bytes}", 413)
                return response
            if request.method == "POST":
                body = await request.body()
                if len(body) > max_request_bytes:
                    response = _error("InvalidInputException",
                                      f"the request body has {len(body)} bytes; the limit is {max_request_bytes}", 413)
                    return response
                match = _CAMPAIGN.search(body)
                if match:
                    campaign = match.group(1).decode(errors="replace").rstrip("/").rsplit("/", 1)[-1]
            response = await call_next(request)
            return response
        finally:
            status = response.status_code if response is not None else 500
            log.info(json.dumps({
                "method": request.method, "path": request.url.path, "campaign": campaign, "status": status,
                "error": response.headers.get("x-amzn-ErrorType") if response is not None else "InternalError",
                "latency_ms": round((time.perf_counter() - start) * 1000, 3)}))
