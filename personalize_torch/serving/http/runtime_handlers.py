"""Personalize Runtime's operations: GetRecommendations (`POST /recommendations`) and GetPersonalizedRanking
(`POST /personalize-ranking`, see inference/personalized_ranking.py).

`userId` asks for a user's recommendations, `itemId` for items related to an item (SIMS's input; every
recipe answers it, see `Predictor.recommend_related`); the response has the same shape either way. A
user's streamed events (PutEvents, or a sessionId asked for as a userId) follow their stored history as
model input and are left out of the recommendations, without retraining. Each handler turns the request
into the campaign's predictor and `RequestOptions`, calls the predictor and writes botocore's fields.

When the events database cannot be read (its disk gone, its server down), recommendations and rankings are still
answered, from what the solution version holds (the trained history, its Users metadata): the streamed events
are missing from those answers until the database is back, and the server logs a warning (at most one a minute).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping

from personalize_torch.errors import InputError
from personalize_torch.filters import Filter
from personalize_torch.serving.campaigns import Campaign, CampaignNotFound, Campaigns
from personalize_torch.serving.events.database import DatabaseUnavailable
from personalize_torch.serving.events.event_store import EventStore, property_fields
from personalize_torch.serving.events.recent_events import recent_events
from personalize_torch.serving.http.api_models import (
    GetPersonalizedRankingRequest,
    GetPersonalizedRankingResponse,
    GetRecommendationsRequest,
)
from personalize_torch.serving.http.errors import invalid_input, not_found, throttled
from personalize_torch.serving.http.request_record import note_campaign, note_recommendation_id
from personalize_torch.serving.http.throttling import Throttles
from personalize_torch.serving.inference.batched_recommendations import submit_recommendations
from personalize_torch.serving.inference.micro_batching import MicroBatcher
from personalize_torch.serving.inference.predictor import Predictor, RecentEvents, RecommendedItem, RequestOptions
from personalize_torch.serving.inference.promotions import Promotion


log = logging.getLogger(__name__)
UNREADABLE_STORE_WARNING_SECONDS = 60.0


def arn_name(arn: str) -> str:
    """The last path segment of an ARN (`arn:aws:personalize:...:campaign/my-campaign` -> `my-campaign`)."""
    return arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def predicted_items(predictor: Predictor, items: list[RecommendedItem], columns: list[str]) -> list[dict]:
    """Response items (PredictedItem's fields, those without a value left out as botocore expects):
    itemId, score (none for popular back-fill), promotionName, reason, metadata (metadataColumns).
    Plain dicts, not pydantic objects: building and re-validating a model per item was a noticeable share
    of a call's CPU under load (bench/RESULTS.md, "Two server processes")."""
    metadata = ([None] * len(items) if not columns else predictor.item_metadata.lookup(
        predictor.solution.item_vocab.to_idx([r.item_id for r in items]), columns))
    out = []
    for r, m in zip(items, metadata):
        item = {"itemId": r.item_id}
        if r.score is not None:
            item["score"] = round(r.score, 8)
        if r.promotion_name is not None:
            item["promotionName"] = r.promotion_name
        if m is not None:
            item["metadata"] = m
        if r.reason:
            item["reason"] = list(r.reason)
        out.append(item)
    return out


def new_recommendation_id() -> str:
    """A response's recommendationId (Personalize's `RID-<uuid>`), noted in the request's access log line."""
    recommendation_id = f"RID-{uuid.uuid4()}"
    note_recommendation_id(recommendation_id)
    return recommendation_id


class RuntimeHandlers:
    """The two operations over `campaigns`, with the server's named `filters` (the last segment of a
    filterArn), its event store, its micro-batcher and the request rates each campaign admits (`throttles`)."""

    def __init__(self, campaigns: Campaigns, filters: Mapping[str, Filter], events: EventStore,
                 batcher: MicroBatcher, throttles: Throttles | None = None):
        self.campaigns, self.filters, self.events, self.batcher = campaigns, dict(filters), events, batcher
        self.throttles = throttles or Throttles()
        self._store_warned_at = -UNREADABLE_STORE_WARNING_SECONDS   # see _note_unreadable_store

    async def get_recommendations(self, req: GetRecommendationsRequest) -> bytes:
        """GetRecommendations' response body. `async`: no thread-pool hop per request; the model call runs
        on the batcher's thread, shared with other requests arriving meanwhile (see
        `batched_recommendations`), and the user's streamed events are one indexed SQLite read (WAL readers
        do not wait for writers)."""
        campaign = self._campaign(req.campaignArn or req.recommenderArn)
        predictor = campaign.predictor
        options = self._recommendation_options(req, campaign)
        try:
            columns = predictor.item_metadata.check(req.metadataColumns)
            if req.itemId is None and req.userId is None:
                raise invalid_input("userId or itemId is required")
            items = await asyncio.wrap_future(submit_recommendations(self.batcher, predictor, req.userId,
                                                                     req.itemId, req.numResults, options))
        except InputError as err:
            raise invalid_input(err.describe()) from None
        # Serialized here: FastAPI would validate the response against GetRecommendationsResponse again
        # (the model still documents it in the OpenAPI schema; tests check the shape through boto3).
        return json.dumps({"itemList": predicted_items(predictor, items, columns),
                           "recommendationId": new_recommendation_id()}, separators=(",", ":")).encode()

    def get_personalized_ranking(self, req: GetPersonalizedRankingRequest) -> GetPersonalizedRankingResponse:
        """GetPersonalizedRanking: `inputList` re-ordered for `userId`: the items the solution knows first,
        best first, with scores that sum to 1, then the items it does not know, without a score or metadata."""
        predictor = self._campaign(req.campaignArn).predictor
        if req.filterArn is None and req.filterValues:
            raise invalid_input("filterValues were given without a filterArn")
        options = RequestOptions(filter=self._filter(req.filterArn) if req.filterArn is not None else None,
                                 filter_values=req.filterValues, context=req.context,
                                 events=self._streamed_events(req.userId, predictor),
                                 user_metadata=self._user_metadata(req.userId, predictor))
        try:
            columns = predictor.item_metadata.check(req.metadataColumns)
            (items,) = predictor.rank([req.userId], [req.inputList], options)
        except InputError as err:
            raise invalid_input(err.describe()) from None
        ranked = predicted_items(predictor, items, columns)
        for item in ranked:
            if "score" not in item:  # not in the solution: nothing to report about it
                item.pop("metadata", None)
        return GetPersonalizedRankingResponse(personalizedRanking=ranked, recommendationId=new_recommendation_id())

    # --- what the requests name ---------------------------------------------------------------------------
    def _campaign(self, arn: str | None) -> Campaign:
        if arn is None:
            raise invalid_input("campaignArn is required")
        try:
            campaign = self.campaigns.get(arn_name(arn))
        except CampaignNotFound as err:
            raise not_found(str(err)) from None
        note_campaign(campaign.name)   # the request's metrics count for the campaign that answers
        if not self.throttles.admit_campaign(campaign.name):
            raise throttled(f"campaign {campaign.name!r}: over its limit of "
                            f"{self.throttles.settings.campaign_requests_per_second:g} requests per second; "
                            "retry with backoff")
        return campaign

    def _filter(self, arn: str, field: str = "filterArn") -> Filter:
        name = arn_name(arn)
        if name not in self.filters:
            raise not_found(f"{field}: filter {name!r} does not exist; filters: "
                            f"{', '.join(sorted(self.filters)) or 'none'}")
        return self.filters[name]

    def _promotion(self, req: GetRecommendationsRequest) -> Promotion | None:
        """The request's one promotion (the request model allows at most one)."""
        if not req.promotions:
            return None
        (p,) = req.promotions
        if p.filterArn is None:
            raise invalid_input("promotions[0].filterArn is required: the filter that selects promoted items")
        return Promotion(p.name, p.percentPromotedItems, self._filter(p.filterArn, "promotions[0].filterArn"),
                         p.filterValues)

    def _recommendation_options(self, req: GetRecommendationsRequest, campaign: Campaign) -> RequestOptions:
        chosen = None
        if req.filterArn is not None:
            chosen = self._filter(req.filterArn)
        elif req.filterValues:
            raise invalid_input("filterValues were given without a filterArn")
        settings = campaign.settings
        streamed = self._streamed_events(req.userId, campaign.predictor)
        return RequestOptions(filter=chosen, filter_values=req.filterValues, context=req.context,
                              exploration_weight=settings.exploration_weight,
                              exploration_item_age_cut_off=settings.exploration_item_age_cut_off, events=streamed,
                              promotion=self._promotion(req), backfill_popular=settings.backfill_popular,
                              user_metadata=self._user_metadata(req.userId, campaign.predictor))

    def _user_metadata(self, user_id: str | None, predictor: Predictor) -> dict[str, str] | None:
        """PutUsers' properties of a user the solution does not know, as fields, for a recipe that reads Users
        metadata (HRNN-Meta, User-Personalization); None otherwise (no store read)."""
        if not predictor.reads_user_metadata_of(user_id):
            return None
        try:
            return property_fields(self.events.user_properties(user_id)) or None
        except DatabaseUnavailable as err:
            self._note_unreadable_store(err)
            return None

    def _streamed_events(self, user_id: str | None, predictor: Predictor) -> RecentEvents | None:
        """The user's PutEvents events as the model's input; None when there are none, or when the events
        database cannot be read now (the answer then comes from the trained history alone)."""
        if user_id is None:
            return None
        try:
            return recent_events(self.events.user_event_columns(user_id), predictor)
        except DatabaseUnavailable as err:
            self._note_unreadable_store(err)
            return None

    def _note_unreadable_store(self, err: DatabaseUnavailable) -> None:
        now = time.monotonic()
        if now - self._store_warned_at >= UNREADABLE_STORE_WARNING_SECONDS:
            self._store_warned_at = now
            log.warning("the events database cannot be read (%s): recommendations are answered without the "
                        "users' streamed events until it can", err)
