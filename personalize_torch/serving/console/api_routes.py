"""The console's read-only JSON routes, `GET /console/api/...`: what the pages show beyond the public API.

They read what the server already holds (the campaigns' solution versions, the event store), answer errors in
AWS's shape (an unknown campaign: ResourceNotFoundException; a bad parameter: InvalidInputException), and sit
behind the API key like the API. Recommendations are never answered here: the pages call the API for those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Query

from personalize_torch.data.stored_ids import StoredIds
from personalize_torch.filters import Filter
from personalize_torch.serving.campaigns import Campaign, CampaignNotFound, Campaigns
from personalize_torch.serving.console.api_models import (
    IdSearch,
    ItemLookup,
    LatestEvents,
    Overview,
    SolutionVersions,
    UserLookup,
)
from personalize_torch.serving.console.campaign_overview import campaign_overview, finite
from personalize_torch.serving.console.item_lookup import co_occurring, item_metadata
from personalize_torch.serving.console.latest_events import latest_events
from personalize_torch.serving.console.solution_versions import find_solution_versions, summary
from personalize_torch.serving.console.user_lookup import user_lookup
from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.http.errors import invalid_input, not_found
from personalize_torch.serving.http.openapi_errors import INVALID_INPUT, NOT_FOUND, UNRECOGNIZED_CLIENT, error_responses

CampaignName = Annotated[str, Query(max_length=256, description=(
    "The campaign (its name or a campaignArn; with one campaign, any name reaches it)."))]
Id = Annotated[str, Query(min_length=1, max_length=256)]
Limit = Annotated[int, Query(ge=1, le=500, description="How many to return.")]


def _checked_id(value: str, name: str) -> str:
    if "\x00" in value:
        raise invalid_input(f"{name}: must not contain NUL characters")
    return value


class ConsoleApi:
    """The handlers: `campaigns` and `events` are the app's; `filters` the server's named filters; `roots` the
    directories searched for solution versions besides the served ones' own and their parents."""

    def __init__(self, campaigns: Campaigns, events: EventStore, filters: dict[str, Filter], roots: list[Path]):
        self.campaigns, self.events, self.filters, self.roots = campaigns, events, filters, roots

    def _campaign(self, name: str) -> Campaign:
        try:
            return self.campaigns.get(name.rstrip("/").rsplit("/", 1)[-1])
        except CampaignNotFound as err:
            raise not_found(str(err)) from None

    def overview(self) -> dict:
        """The dataset group each campaign was trained on, the campaigns (solution version, recipe,
        hyperparameters, Personalize metrics, settings), the server's filters and the stored event count."""
        served = [self.campaigns.get(name) for name in self.campaigns.names()]
        return {"campaigns": [campaign_overview(c) for c in served],
                "filters": [{"name": name, "expression": f.text or str(f), "parameters": f.parameters}
                            for name, f in sorted(self.filters.items())],
                "storedEvents": self.events.count_events()}

    def solution_versions(self) -> dict:
        """The solution versions found under the server's roots (the served ones' directories and their
        parents, the deploy and update roots), with their offline metrics, oldest first."""
        serving: dict[Path, list[str]] = {}
        for name in self.campaigns.names():
            serving.setdefault(self.campaigns.get(name).predictor.solution.path.resolve(), []).append(name)
        roots = list(dict.fromkeys([*serving, *(p.parent for p in serving), *(r.resolve() for r in self.roots)]))
        found = [summary(path, serving.get(path, [])) for path in find_solution_versions(roots)]
        versions = sorted((s for s in found if s is not None), key=lambda s: (s["created"] or "", s["path"]))
        return {"solutionVersions": versions, "roots": [str(r) for r in roots]}

    def item(self, itemId: Id, campaign: CampaignName = "default", limit: Limit = 10) -> dict:
        """An item as the campaign's solution version knows it: its metadata, how many users have it in their
        stored histories, and the items most often in the same histories."""
        served = self._campaign(campaign)
        predictor = served.predictor
        idx = int(predictor.solution.item_vocab.to_idx([itemId])[0])
        if idx <= 0:
            return {"campaign": served.name, "itemId": itemId, "known": False, "metadata": {}, "users": 0,
                    "events": 0, "coOccurring": []}
        users, events, pairs = co_occurring(predictor, idx, limit)
        ids = predictor.solution.item_vocab.to_id([i for i, _ in pairs]) if pairs else []
        metadata = item_metadata(predictor, [idx, *(i for i, _ in pairs)])
        return {"campaign": served.name, "itemId": itemId, "known": True, "metadata": metadata[0], "users": users,
                "events": events, "coOccurring": [{"itemId": str(i), "users": n, "metadata": m}
                                                  for i, (_, n), m in zip(ids, pairs, metadata[1:])]}

    def user(self, userId: Id, campaign: CampaignName = "default", limit: Limit = 50) -> dict:
        """A user's metadata and newest events (the solution version's stored history and the events sent with
        PutEvents), newest first, each with its item's metadata."""
        served = self._campaign(campaign)
        found = user_lookup(served.predictor, self.events, _checked_id(userId, "userId"), limit)
        return finite({"campaign": served.name, **found})

    def events_page(self, limit: Limit = 50) -> dict:
        """The latest events to reach the event store, newest first."""
        total, events = latest_events(self.events, limit)
        return finite({"total": total, "events": events})

    def ids(self, kind: Annotated[Literal["users", "items"], Query(description="users or items.")],
            prefix: Annotated[str, Query(max_length=256, description="The ids' beginning.")] = "",
            campaign: CampaignName = "default", limit: Limit = 20) -> dict:
        """Ids of the campaign's solution version's users (with a stored history) or items that start with
        `prefix`."""
        solution = self._campaign(campaign).predictor.solution
        vocab = solution.user_vocab if kind == "users" else solution.item_vocab
        ids = vocab.arrow if isinstance(vocab, StoredIds) else pa.array(list(vocab.ids), pa.string())
        matching = ids.filter(pc.starts_with(ids, prefix)) if prefix else ids
        return {"ids": matching.slice(0, limit).to_pylist()}


def register_api_routes(app: FastAPI, api: ConsoleApi) -> None:
    errors = error_responses(INVALID_INPUT, UNRECOGNIZED_CLIENT, NOT_FOUND)
    routes = [("/console/api/overview", "ConsoleOverview", Overview, api.overview),
              ("/console/api/solution-versions", "ConsoleSolutionVersions", SolutionVersions, api.solution_versions),
              ("/console/api/item", "ConsoleItem", ItemLookup, api.item),
              ("/console/api/user", "ConsoleUser", UserLookup, api.user),
              ("/console/api/events", "ConsoleEvents", LatestEvents, api.events_page),
              ("/console/api/ids", "ConsoleIds", IdSearch, api.ids)]
    for path, operation_id, model, handler in routes:
        app.get(path, operation_id=operation_id, response_model=model, responses=errors, tags=["Console"])(handler)
