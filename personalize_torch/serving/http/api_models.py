"""Request and response bodies of Personalize Runtime and Personalize Events, with botocore's field names, and of
the server's own routes (`GET /ping`, `PUT /campaigns/{name}`). Each field's description is the OpenAPI
document's (`GET /docs`).

Every field a client controls is bounded as botocore's service models bound it (lengths of ids, ARNs, context
and filter values, number of filterValues, context entries, metadata columns, events, items, users,
impressions, sizes of properties), plus Personalize's documented limits that botocore does not check
(numResults at most 500, inputList at most 500 items): a request outside them is answered 400
InvalidInputException naming the field, and the OpenAPI document states each bound."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from personalize_torch.serving.inference.personalized_ranking import MAX_INPUT_ITEMS
from personalize_torch.serving.inference.predictor import MAX_RESULTS

# Bounds of botocore's personalize-runtime model (shapes Arn, AttributeName / AttributeValue, FilterAttributeName /
# FilterAttributeValue, FilterValues, Context, MetadataColumns, ColumnNamesList, ColumnName).
MAX_ARN = 256
MAX_FILTER_VALUES = 25
MAX_CONTEXT_ENTRIES = 150
Arn = Annotated[str, Field(max_length=MAX_ARN)]
RuntimeId = Annotated[str, Field(max_length=256)]


def _pattern_names_only(schema: dict) -> None:
    """State a map's key pattern as its only allowed property names (pydantic writes `patternProperties`, which
    leaves other names allowed in the JSON schema; the server refuses them)."""
    ((pattern, values),) = schema.pop("patternProperties").items()
    schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern}
    schema["additionalProperties"] = values


FilterValues = Annotated[dict[Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_]+$")],
                              Annotated[str, Field(max_length=1000)]], Field(json_schema_extra=_pattern_names_only)]
Context = Annotated[dict[Annotated[str, Field(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9_]+$")],
                         Annotated[str, Field(max_length=1000)]], Field(json_schema_extra=_pattern_names_only)]
MetadataColumns = dict[Annotated[str, Field(min_length=1, max_length=256)],
                       Annotated[list[Annotated[str, Field(min_length=1, max_length=150)]], Field(max_length=99)]]


class Promotion(BaseModel):
    """botocore's Promotion; a name and a percentage are required here (they tag and size the promoted part)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*$",
                      description="The promotion's name, returned as promotionName on the items it promoted.")
    percentPromotedItems: int = Field(ge=1, le=100, description="The share of numResults given to promoted items.")
    filterArn: str | None = Field(None, max_length=256, description=(
        "The filter that selects the promoted items: its last segment names one of the server's filters."))
    filterValues: FilterValues | None = Field(None, max_length=MAX_FILTER_VALUES, description=(
        "Values of the filter's placeholders ($NAME): a quoted value, or several separated by commas."))


FILTER_ARN = "A filter: the last segment of the ARN names one of the server's filters (serve.py filters=...)."
FILTER_VALUES = "Values of the filter's placeholders ($NAME): a quoted value, or several separated by commas."
CONTEXT = "The request's context (e.g. {\"DEVICE\": \"mobile\"}): the values of the solution's context fields."
METADATA_COLUMNS = ("Item metadata to return with each item: {\"ITEMS\": [column, ...]} with columns of the "
                    "Items dataset.")


class GetRecommendationsRequest(BaseModel):
    """botocore's GetRecommendationsRequest: userId, itemId or both, and the campaign that answers."""

    model_config = ConfigDict(extra="forbid")

    campaignArn: Arn | None = Field(None, description=(
        "The campaign: the last segment of the ARN names it (with one campaign, any name reaches it)."))
    recommenderArn: Arn | None = Field(None, description="Taken as campaignArn when that is not given.")
    itemId: RuntimeId | None = Field(None, description=(
        "Items related to this item; with userId too, leaving out that user's items."))
    userId: RuntimeId | None = Field(None, description=(
        "The user (or a session id) whose recommendations are asked for."))
    numResults: int = Field(25, ge=0, le=MAX_RESULTS, description="How many items to return.")
    context: Context | None = Field(None, max_length=MAX_CONTEXT_ENTRIES, description=CONTEXT)
    filterArn: Arn | None = Field(None, description=FILTER_ARN)
    filterValues: FilterValues | None = Field(None, max_length=MAX_FILTER_VALUES, description=FILTER_VALUES)
    promotions: list[Promotion] | None = Field(None, max_length=1, description=(   # one per request, as Personalize
        "At most one promotion: a share of the list given to items a filter selects."))
    metadataColumns: MetadataColumns | None = Field(None, max_length=1, description=METADATA_COLUMNS)


class PredictedItem(BaseModel):
    """One recommended or ranked item; fields without a value are left out."""

    itemId: str = Field(description="The item's id.")
    score: float | None = Field(None, description=(
        "The model's score (for most recipes a softmax probability over the catalogue); none for popular items "
        "that fill a short list and for ranked items the solution does not know."))
    promotionName: str | None = Field(None, description="The promotion that placed the item, if one did.")
    metadata: dict[str, str] | None = Field(None, description="The metadataColumns asked for, by column.")
    reason: list[str] | None = Field(None, description=(
        "Why the item is here when it is not the model's own choice: \"Popular item\" (filling a short list) or "
        "\"Promoted item\"."))


class GetRecommendationsResponse(BaseModel):
    itemList: list[PredictedItem] = Field(description="The items, best first.")
    recommendationId: str = Field(description=(
        "This answer's id (RID-...), to send back with PutEvents' recommendationId."))


class GetPersonalizedRankingRequest(BaseModel):
    """botocore's GetPersonalizedRankingRequest (campaignArn, inputList and userId required); inputList
    holds at most MAX_INPUT_ITEMS items, Personalize's limit."""

    model_config = ConfigDict(extra="forbid")

    campaignArn: Arn = Field(description=(
        "The campaign: the last segment of the ARN names it (with one campaign, any name reaches it)."))
    inputList: list[RuntimeId] = Field(max_length=MAX_INPUT_ITEMS, description="The item ids to rank.")
    userId: RuntimeId = Field(description="The user (or a session id) to rank them for.")
    context: Context | None = Field(None, max_length=MAX_CONTEXT_ENTRIES, description=CONTEXT)
    filterArn: Arn | None = Field(None, description=FILTER_ARN)
    filterValues: FilterValues | None = Field(None, max_length=MAX_FILTER_VALUES, description=FILTER_VALUES)
    metadataColumns: MetadataColumns | None = Field(None, max_length=1, description=METADATA_COLUMNS)


class GetPersonalizedRankingResponse(BaseModel):
    personalizedRanking: list[PredictedItem] = Field(description=(
        "inputList re-ordered: the items the solution knows, best first, with scores that sum to 1, then the "
        "others, without a score."))
    recommendationId: str = Field(description=(
        "This answer's id (RID-...), to send back with PutEvents' recommendationId."))


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
    except (ValueError, RecursionError):   # RecursionError: nested deeper than the JSON reader follows
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

    eventAttributionSource: str = Field(max_length=1024, pattern=r"^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$",
                                        description="Where the event came from, for metric attributions.")


class EventInput(BaseModel):
    """botocore's Event shape."""

    model_config = ConfigDict(extra="forbid")

    eventId: Id256 | None = Field(None, description="The event's own id.")
    eventType: Id256 = Field(description="The kind of event (click, purchase, watch, ...).")
    eventValue: float | None = Field(None, description="A value such as a rating or a price.")
    itemId: Id256 | None = Field(None, description="The item the event is about.")
    properties: str | None = Field(None, min_length=1, max_length=1024, description=(
        "A JSON object in a string: the event's other fields (e.g. '{\"DEVICE\": \"mobile\"}')."))
    sentAt: float = Field(description="When it happened: epoch seconds (or an ISO 8601 timestamp).",
                          json_schema_extra={"minimum": 0, "exclusiveMaximum": MAX_SENT_AT})
    recommendationId: str | None = Field(None, min_length=1, max_length=40, description=(
        "The recommendationId of the answer the item was shown in."))
    impression: list[Id256] | None = Field(None, min_length=1, max_length=25, description=(
        "The items shown to the user with it."))
    metricAttribution: MetricAttribution | None = Field(None, description="The event's source, for attribution.")

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

    trackingId: Id256 = Field(description="The event tracker's id (stored with the events; any value is accepted).")
    userId: Id256 | None = Field(None, description="The user; left out for an anonymous session.")
    sessionId: Id256 = Field(description=(
        "The session; an anonymous session's events become the user's once a call gives both."))
    eventList: list[EventInput] = Field(min_length=1, max_length=MAX_EVENTS_PER_CALL, description=(
        f"1 to {MAX_EVENTS_PER_CALL} events."))


DatasetArn = Annotated[str, Field(max_length=256, pattern=r"arn:([a-z\d-]+):personalize:.*:.*:.+")]


class ItemInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    itemId: Id256 = Field(description="The item's id.")
    properties: str | None = Field(None, min_length=1, max_length=32000, description=(
        "A JSON object in a string: the item's fields of the Items schema (e.g. '{\"genres\": \"Comedy\"}')."))

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: str | None) -> str | None:
        return _json_object(value, "properties")


class PutItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasetArn: DatasetArn = Field(description="The Items dataset's ARN (stored with the rows).")
    items: list[ItemInput] = Field(min_length=1, max_length=10, description="1 to 10 items.")


class UserInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    userId: Id256 = Field(description="The user's id.")
    properties: str | None = Field(None, min_length=1, max_length=24000, description=(
        "A JSON object in a string: the user's fields of the Users schema."))

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: str | None) -> str | None:
        return _json_object(value, "properties")


class PutUsersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasetArn: DatasetArn = Field(description="The Users dataset's ARN (stored with the rows).")
    users: list[UserInput] = Field(min_length=1, max_length=10, description="1 to 10 users.")


MAX_AUTO_UPDATE_MINUTES = 525_600   # a year


class DeployRequest(BaseModel):
    """PUT /campaigns/{name}: a solution version directory (relative to the server's deploy_root) and,
    optionally, the campaign's settings (campaignConfig)."""

    model_config = ConfigDict(extra="forbid")

    solution: str = Field(min_length=1, max_length=1024, description=(
        "The solution version's directory, relative to the server's deploy_root."))
    explorationWeight: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False, description=(
        "How much to explore items with little data (itemExplorationConfig); unchanged when left out."))
    explorationItemAgeCutOff: float | None = Field(None, gt=0.0, allow_inf_nan=False, description=(
        "Items newer than this many days are explored (itemExplorationConfig); unchanged when left out."))
    backfillPopular: bool | None = Field(None, description=(
        "Fill lists a filter leaves short with popular items; unchanged when left out."))
    autoUpdateMinutes: float | None = Field(None, ge=1.0, le=MAX_AUTO_UPDATE_MINUTES, description=(
        "UPDATE the campaign with new PutItems items this often (1 minute to a year); unchanged when left out."))

    def settings(self) -> dict:
        given = {"exploration_weight": self.explorationWeight,
                 "exploration_item_age_cut_off": self.explorationItemAgeCutOff,
                 "backfill_popular": self.backfillPopular, "auto_update_minutes": self.autoUpdateMinutes}
        return {k: v for k, v in given.items() if v is not None}


class DeployResponse(BaseModel):
    campaign: str = Field(description="The campaign deployed to.")
    recipe: str = Field(description="The recipe of the solution version it now serves.")


class PingResponse(BaseModel):
    status: str = Field(description="\"ok\" when the server answers.")
    campaigns: list[str] = Field(description="The campaigns this worker process serves.")
    worker: int = Field(description="The index of the worker process that answered (0 with one).")
