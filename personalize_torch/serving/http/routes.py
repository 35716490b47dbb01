"""Every route of the HTTP API, each registered once, and the handler that answers it.

GetRecommendations is registered through `add_fast_route` (answered before FastAPI's router, see
`fast_routes`); the others are plain FastAPI routes. FastAPI names each operation after its handler
(`get_recommendations` -> operationId `get_recommendations_recommendations_post`), and a handler's
docstring is its description in the OpenAPI document (/docs).
"""

from __future__ import annotations

from fastapi import FastAPI

from personalize_torch.serving.http.api_models import (
    GetPersonalizedRankingResponse,
    GetRecommendationsRequest,
    GetRecommendationsResponse,
)
from personalize_torch.serving.http.campaign_handlers import CampaignHandlers
from personalize_torch.serving.http.events_handlers import EventsHandlers
from personalize_torch.serving.http.fast_routes import FastRoute, add_fast_route
from personalize_torch.serving.http.runtime_handlers import RuntimeHandlers


def register_routes(app: FastAPI, fast_routes: dict[str, FastRoute], campaigns: CampaignHandlers,
                    runtime: RuntimeHandlers, events: EventsHandlers) -> None:
    """Add the API's routes to `app`; the fast ones also to `fast_routes` (the table `FastRoutes` reads)."""
    app.get("/ping")(campaigns.ping)
    app.put("/campaigns/{name}")(campaigns.deploy)
    # Personalize Runtime
    add_fast_route(app, fast_routes, "/recommendations", runtime.get_recommendations, GetRecommendationsRequest,
                   GetRecommendationsResponse)
    app.post("/personalize-ranking", response_model=GetPersonalizedRankingResponse,
             response_model_exclude_none=True)(runtime.get_personalized_ranking)
    # Personalize Events
    app.post("/events")(events.put_events)
    app.post("/items")(events.put_items)
    app.post("/users")(events.put_users)
