"""The HTTP app: Personalize Runtime's GetRecommendations and GetPersonalizedRanking and Personalize Events'
PutEvents / PutItems / PutUsers, wire-compatible with boto3, plus `GET /ping`, `GET /metrics` (Prometheus)
and `PUT /campaigns/{name}`.

`boto3.client("personalize-runtime", endpoint_url="http://host:port")` works unchanged: it POSTs JSON
to /recommendations (with SigV4 headers, which are accepted and not checked) and reads errors in the
AWS JSON shape (`x-amzn-ErrorType` header + {"message": ...}), raising ResourceNotFoundException or
InvalidInputException; `boto3.client("personalize-events", endpoint_url=...)` works the same way.

`create_app` wires the parts: the campaigns (`serving.campaigns`), the event store, the micro-batcher,
the metrics (`server_metrics`), the handlers and their routes (`routes`), the middleware (access controls
outside, fast routes inside) and the background loops that change the campaigns (auto-update, other
workers' deploys).
"""

from __future__ import annotations

import asyncio
import gc
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from personalize_torch.filters import Filter
from personalize_torch.serving.campaigns import Campaigns, CampaignSettings, auto_update_loop, follow_deployments_loop
from personalize_torch.serving.console import register_console
from personalize_torch.serving.events.deployment_log import DeploymentLog
from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.http.access_controls import install_access_controls
from personalize_torch.serving.http.api_keys import ApiKeys
from personalize_torch.serving.http.campaign_handlers import CampaignHandlers
from personalize_torch.serving.http.errors import (
    ServiceError,
    http_status_error,
    internal_failure,
    invalid_input,
    validation_message,
)
from personalize_torch.serving.http.events_handlers import EventsHandlers
from personalize_torch.serving.http.fast_routes import FastRoute, FastRoutes
from personalize_torch.serving.http.metrics_directory import metrics_dir
from personalize_torch.serving.http.openapi_errors import without_422
from personalize_torch.serving.http.routes import register_routes
from personalize_torch.serving.http.runtime_handlers import RuntimeHandlers
from personalize_torch.serving.http.server_metrics import ServerMetrics
from personalize_torch.serving.http.throttling import Throttles, ThrottleSettings
from personalize_torch.serving.inference.micro_batching import MicroBatcher
from personalize_torch.serving.inference.predictor import Predictor


def create_app(campaigns: dict[str, Predictor], filters: dict[str, Filter] | None = None,
               settings: dict[str, CampaignSettings] | None = None, events: EventStore | None = None,
               api_key: str | None = None, max_request_bytes: int = 1_000_000,
               deploy_root: str | Path | None = None, update_root: str | Path = "outputs/serve/updates",
               max_batch: int = 32, deployments: DeploymentLog | None = None, deployed_version: int = 0,
               worker: int = 0, deploy_poll_seconds: float = 1.0, cache_user_states: bool = False,
               metrics: ServerMetrics | None = None, api_keys_file: str | Path | None = None,
               throttling: ThrottleSettings | None = None) -> FastAPI:
    """`campaigns` maps campaign names to predictors (with exactly one, every campaignArn reaches it; what
    each serves after deploys and auto-updates: `app.state.campaigns.get(name).predictor`, see `Campaigns`); `filters` maps filter names (the
    last segment of a filterArn) to parsed filters; `settings` holds each campaign's settings; `events` is
    the event store (PutEvents / PutItems / PutUsers) that every campaign reads users' recent events from
    (None: a new in-memory store, closed with the app, so nothing survives a restart); `api_key` and
    `max_request_bytes`: see `access_controls`; `deploy_root`: when set, `PUT /campaigns/{name}` deploys
    solution versions found under that directory; `update_root`: where campaigns with
    `auto_update_minutes` write their UPDATEd solution versions (see `auto_update`); `max_batch`: at most
    this many concurrent GetRecommendations requests share one model call (see `micro_batching`; 1 = each
    request alone).

    Several worker processes (serve.py `workers=N`) each build this app: `deployments` is the log they
    share (see `deployment_log`): deploys and auto-updates made by one are recorded there, and every worker
    applies the ones after `deployed_version` (the version of the startup campaigns) that it has not
    applied yet, polling every `deploy_poll_seconds`. Only `worker` 0 runs the auto-update loop.
    `cache_user_states`: solution versions deployed later keep their users' model states between requests
    (see `Predictor`); the startup `campaigns` come as they were built. `metrics`: what `GET /metrics`
    reports (None: a new `ServerMetrics`, in prometheus-client's multiprocess mode when this process has a
    metrics directory, see `metrics_directory`). `api_keys_file`: keys accepted besides `api_key`, read again
    when the file changes (see `api_keys`). `throttling`: the request rates this process admits (see
    `throttling`; None: no limits)."""
    own_store = events is None
    store = EventStore(":memory:") if own_store else events
    metrics = metrics if metrics is not None else ServerMetrics(metrics_dir())
    served = Campaigns(campaigns, settings, events=store, deploy_root=deploy_root, update_root=update_root,
                       deployments=deployments, deployed_version=deployed_version,
                       cache_user_states=cache_user_states, on_change=metrics.campaign_changed)
    batcher = MicroBatcher(max_batch, on_batch=metrics.batch_ran)
    keys, throttles = ApiKeys(api_key, api_keys_file), Throttles(throttling)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        tasks = []
        if worker == 0 and served.auto_updating():
            tasks.append(asyncio.create_task(auto_update_loop(served)))
        if deployments is not None:
            tasks.append(asyncio.create_task(follow_deployments_loop(served, deploy_poll_seconds)))
        # The models, catalogues and data frames loaded so far live as long as the server: moved out of
        # the garbage collector's generations, they are not traversed again by every full collection
        # (a lower p99 under load: bench/RESULTS.md, "GetRecommendations without FastAPI's router").
        gc.collect()
        gc.freeze()
        yield
        for task in tasks:
            task.cancel()
        batcher.close()
        if own_store:
            store.close()

    # /docs and /redoc: the console serves them with Swagger UI's and ReDoc's files from the package (offline)
    app = FastAPI(title="personalize-torch runtime", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.campaigns = served
    app.state.batcher = batcher
    app.state.events = store
    app.state.metrics = metrics
    fast_routes: dict[str, FastRoute] = {}
    register_routes(app, fast_routes, CampaignHandlers(served, worker),
                    RuntimeHandlers(served, filters or {}, store, batcher, throttles), EventsHandlers(store, metrics),
                    metrics)
    without_422(app)   # bodies that do not validate are answered 400 InvalidInputException
    # Middleware added last runs first: the access controls (key, size, log, metrics), then the fast routes.
    app.add_middleware(FastRoutes, routes=fast_routes)
    install_access_controls(app, keys, max_request_bytes, metrics, throttles)
    # Last: the console's pages, /docs and /redoc are answered before the access controls (they hold no data)
    register_console(app, filters, roots=[deploy_root, update_root])
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)   # unknown paths, wrong methods, bodies that do not parse
    app.add_exception_handler(Exception, unexpected_error)   # what fails outside the access controls
    return app


async def service_error(_: Request, err: ServiceError) -> Response:
    return err.response()


async def http_error(request: Request, err: HTTPException) -> Response:
    response = http_status_error(err.status_code, err.detail, request.method, request.url.path).response()
    for name, value in (err.headers or {}).items():   # e.g. a 405's Allow
        response.headers.setdefault(name, value)
    return response


async def unexpected_error(_: Request, __: Exception) -> Response:
    """Starlette logs the exception; the client gets AWS's shape, without it."""
    return internal_failure().response()


async def validation_error(_: Request, err: RequestValidationError) -> Response:
    """FastAPI's validation errors in the AWS shape, as the fast routes write them."""
    return invalid_input(validation_message(err.errors())).response()
