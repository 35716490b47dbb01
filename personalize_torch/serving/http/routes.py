"""Every route of the HTTP API, each registered once, and the handler that answers it.

GetRecommendations is registered through `add_fast_route` (answered before FastAPI's router, see
`fast_routes`); the others are plain FastAPI routes. Each route's operationId in the OpenAPI document (/docs)
is its API operation's name (`request_record.operation_name`: GetRecommendations, PutEvents, ...), the
`operation` of the access log and the metrics; a handler's docstring is its description, and `responses` lists
the errors it can answer (`openapi_errors`).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response

from personalize_torch.serving.http.api_models import (
    DeployResponse,
    GetPersonalizedRankingResponse,
    GetRecommendationsRequest,
    GetRecommendationsResponse,
    PingResponse,
)
from personalize_torch.serving.http.campaign_handlers import CampaignHandlers
from personalize_torch.serving.http.events_handlers import EventsHandlers
from personalize_torch.serving.http.fast_routes import FastRoute, add_fast_route
from personalize_torch.serving.http.openapi_errors import (
    ACCESS_DENIED,
    INTERNAL_FAILURE,
    INVALID_INPUT,
    NOT_FOUND,
    SOLUTION_NOT_FOUND,
    STORE_UNAVAILABLE,
    THROTTLED,
    TOO_LARGE,
    UNRECOGNIZED_CLIENT,
    error_responses,
)
from personalize_torch.serving.http.request_record import operation_name
from personalize_torch.serving.http.runtime_handlers import RuntimeHandlers
from personalize_torch.serving.http.server_metrics import ServerMetrics

RUNTIME_ERRORS = error_responses(INVALID_INPUT, THROTTLED, UNRECOGNIZED_CLIENT, NOT_FOUND, TOO_LARGE, INTERNAL_FAILURE)
PUT_EVENTS_ERRORS = error_responses(INVALID_INPUT, THROTTLED, UNRECOGNIZED_CLIENT, TOO_LARGE, INTERNAL_FAILURE,
                                    STORE_UNAVAILABLE)
EVENTS_ERRORS = error_responses(INVALID_INPUT, UNRECOGNIZED_CLIENT, TOO_LARGE, INTERNAL_FAILURE, STORE_UNAVAILABLE)
STORED = {200: {"description": "Stored: an empty body."}}


def register_routes(app: FastAPI, fast_routes: dict[str, FastRoute], campaigns: CampaignHandlers,
                    runtime: RuntimeHandlers, events: EventsHandlers, metrics: ServerMetrics) -> None:
    """Add the API's routes to `app`; the fast ones also to `fast_routes` (the table `FastRoutes` reads)."""
    app.get("/ping", operation_id=operation_name("GET", "/ping"), response_model=PingResponse,
            description="Health: the campaigns this worker process serves, and its index. Needs no API key.")(
        campaigns.ping)
    app.get("/metrics", operation_id=operation_name("GET", "/metrics"), response_class=Response,
            responses={200: {"description": "Prometheus' text format.", "content": {"text/plain": {}}},
                       **error_responses(UNRECOGNIZED_CLIENT, INTERNAL_FAILURE)})(metrics.scrape)
    app.put("/campaigns/{name}", operation_id=operation_name("PUT", "/campaigns/name"), response_model=DeployResponse,
            responses=error_responses(INVALID_INPUT, UNRECOGNIZED_CLIENT, ACCESS_DENIED, SOLUTION_NOT_FOUND, TOO_LARGE,
                                      INTERNAL_FAILURE))(campaigns.deploy)
    # Personalize Runtime
    add_fast_route(app, fast_routes, "/recommendations", runtime.get_recommendations, GetRecommendationsRequest,
                   GetRecommendationsResponse, operation_id=operation_name("POST", "/recommendations"),
                   responses=RUNTIME_ERRORS, description=(
                       "Personalize Runtime's GetRecommendations: a user's recommendations (userId), or items related "
                       "to an item (itemId), from the campaign campaignArn (or recommenderArn) names, with the "
                       "filter, promotion, context and item metadata the request asks for."))
    app.post("/personalize-ranking", operation_id=operation_name("POST", "/personalize-ranking"),
             response_model=GetPersonalizedRankingResponse, response_model_exclude_none=True,
             responses=RUNTIME_ERRORS)(runtime.get_personalized_ranking)
    # Personalize Events
    events_routes = [
        ("/events", events.put_events, ("Personalize Events' PutEvents: a user's (or an anonymous session's) "
                                        "events, stored before the answer; the next GetRecommendations for them "
                                        "reads them.")),
        ("/items", events.put_items, ("Personalize Events' PutItems: add items, or replace their properties "
                                      "(campaigns with auto-update add the new items to their solution versions).")),
        ("/users", events.put_users, "Personalize Events' PutUsers: add users, or replace their properties."),
    ]
    for path, handler, description in events_routes:
        errors = PUT_EVENTS_ERRORS if path == "/events" else EVENTS_ERRORS
        app.post(path, operation_id=operation_name("POST", path), response_class=Response,
                 responses={**STORED, **errors}, description=description)(handler)
