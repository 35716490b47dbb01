"""Request and response bodies of Personalize Runtime and Personalize Events, with botocore's field names."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from personalize_torch.serving.inference.personalized_ranking import MAX_INPUT_ITEMS
from personalize_torch.serving.inference.predictor import MAX_RESULTS


class Promotion(BaseModel):
    """botocore's Promotion; a name and a percentage are required here (they tag and size the promoted part)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*$")
    percentPromotedItems: int = Field(ge=1, le=100)
    filterArn: str | None = Field(None, max_length=256)
    filterValues: dict[str, str] | None = Field(None, max_length=25)


class GetRecommendationsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaignArn: str | None = None
    recommenderArn: str | None = None
    itemId: str | None = Field(None, max_length=256)
    userId: str | None = Field(None, max_length=256)
    numResults: int = Field(25, ge=0, le=MAX_RESULTS)
    context: dict[str, str] | None = None
    filterArn: str | None = None
    filterValues: dict[str, str] | None = None
    promotions: list[Promotion] | None = Field(None, max_length=1)  # Personalize takes one promotion per request
    metadataColumns: dict[str, list[str]] | None = None


class PredictedItem(BaseModel):
    itemId: str
    score: float | None = None
    promotionName: str | None = None
    metadata: dict[str, str] | None = None
    reason: list[str] | None = None


class GetRecommendationsResponse(BaseModel):
    itemList: list[PredictedItem]
    recommendationId: str


class GetPersonalizedRankingRequest(BaseModel):
    """botocore's GetPersonalizedRankingRequest (campaignArn, inputList and userId required); inputList
    holds at most MAX_INPUT_ITEMS items, Personalize's limit."""

    model_config = ConfigDict(extra="forbid")

    campaignArn: str = Field(max_length=256)
    inputList: list[Annotated[str, Field(max_length=256)]] = Field(max_length=MAX_INPUT_ITEMS)
    userId: str = Field(max_length=256)
    context: dict[str, str] | None = Field(None, max_length=150)
    filterArn: str | None = Field(None, max_length=256)
    filterValues: dict[str, str] | None = Field(None, max_length=25)
    metadataColumns: dict[str, list[str]] | None = None


class GetPersonalizedRankingResponse(BaseModel):
    personalizedRanking: list[PredictedItem]
    recommendationId: str


# --- Personalize Events (botocore's `personalize-events` model) --------------------------------------
# boto3 sends `sentAt` as epoch seconds (a JSON number, fractional for sub-second datetimes) and each
# `properties` as a string holding a JSON object. ISO 8601 strings are accepted for sentAt too.

MAX_EVENTS_PER_CALL = 10
MAX_SENT_AT = 1e11  # epoch seconds beyond the year 5000 are milliseconds sent by mistake


def _json_object(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ValueError(f"{field} must be a JSON object in a string, such as '{{\"numberOfRatings\": \"12\"}}'")
    if not isinstance(parsed, dict):
        raise ValueError(f"{field} must be a JSON object, not {type(parsed).__name__}")
    return value


def _epoch_seconds(value):
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("sentAt must be epoch seconds or an ISO 8601 timestamp") from None
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    return value


Id256 = Annotated[str, Field(min_length=1, max_length=256)]


class MetricAttribution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eventAttributionSource: str = Field(max_length=1024, pattern=r"^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$")


class EventInput(BaseModel):
    """botocore's Event shape."""

    model_config = ConfigDict(extra="forbid")

    eventId: Id256 | None = None
    eventType: Id256
    eventValue: float | None = None
    itemId: Id256 | None = None
    properties: str | None = Field(None, min_length=1, max_length=1024)
    sentAt: float
    recommendationId: str | None = Field(None, min_length=1, max_length=40)
    impression: list[Id256] | None = Field(None, min_length=1, max_length=25)
    metricAttribution: MetricAttribution | None = None

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: str | None) -> str | None:
        return _json_object(value, "properties")

    @field_validator("sentAt", mode="before")
    @classmethod
    def _sent_at_before(cls, value):
        return _epoch_seconds(value)

    @field_validator("sentAt")
    @classmethod
    def _sent_at(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("sentAt must be a non-negative number of epoch seconds")
        if value >= MAX_SENT_AT:
            raise ValueError("sentAt looks like milliseconds; send epoch seconds")
        return value

    @field_validator("eventValue")
    @classmethod
    def _event_value(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("eventValue must be a finite number")
        return value


class PutEventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trackingId: Id256
    userId: Id256 | None = None
    sessionId: Id256
    eventList: list[EventInput] = Field(min_length=1, max_length=MAX_EVENTS_PER_CALL)


DatasetArn = Annotated[str, Field(max_length=256, pattern=r"arn:([a-z\d-]+):personalize:.*:.*:.+")]


class ItemInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    itemId: Id256
    properties: str | None = Field(None, min_length=1, max_length=32000)

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: str | None) -> str | None:
        return _json_object(value, "properties")


class PutItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasetArn: DatasetArn
    items: list[ItemInput] = Field(min_length=1, max_length=10)


class UserInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    userId: Id256
    properties: str | None = Field(None, min_length=1, max_length=24000)

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: str | None) -> str | None:
        return _json_object(value, "properties")


class PutUsersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasetArn: DatasetArn
    users: list[UserInput] = Field(min_length=1, max_length=10)


class DeployRequest(BaseModel):
    """PUT /campaigns/{name}: a solution version directory (relative to the server's deploy_root) and,
    optionally, the campaign's settings (campaignConfig)."""

    model_config = ConfigDict(extra="forbid")

    solution: str = Field(min_length=1, max_length=1024)
    explorationWeight: float | None = Field(None, ge=0.0, le=1.0)
    explorationItemAgeCutOff: float | None = Field(None, gt=0.0)
    backfillPopular: bool | None = None
    autoUpdateMinutes: float | None = Field(None, gt=0.0)

    def settings(self) -> dict:
        given = {"exploration_weight": self.explorationWeight,
                 "exploration_item_age_cut_off": self.explorationItemAgeCutOff,
                 "backfill_popular": self.backfillPopular, "auto_update_minutes": self.autoUpdateMinutes}
        return {k: v for k, v in given.items() if v is not None}
