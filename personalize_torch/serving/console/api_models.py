"""Bodies of the console's JSON routes (`GET /console/api/...`); each field's description is the OpenAPI
document's."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

METADATA = "The item's (or user's) metadata from the solution version's Items (Users) table: {column: value as text}."


class DatasetField(BaseModel):
    name: str = Field(description="The field's name in the dataset's schema.")
    type: str = Field(description="The field's Avro type (as text, e.g. string, long, [\"null\", \"string\"]).")
    flags: list[str] = Field(description="categorical and/or textual, when the schema marks the field so.")


class Dataset(BaseModel):
    name: str = Field(description="Interactions, Items or Users.")
    rows: int | None = Field(description=(
        "Interactions: the events trained on; Items: the items in the catalogue; Users: the Users dataset's rows."))
    fields: list[DatasetField] = Field(description="The dataset's schema.")


class DatasetGroup(BaseModel):
    name: str | None = Field(description="The data's name (demo data, a dataset group directory, ...).")
    fingerprint: str | None = Field(description="The training data's fingerprint: equal for the same data.")
    datasets: list[Dataset] = Field(description="The datasets the solution version was trained on.")
    firstEvent: float | None = Field(description="The oldest stored interaction's time (epoch seconds).")
    lastEvent: float | None = Field(description="The newest stored interaction's time (epoch seconds).")
    users: int = Field(description="Users with a stored history.")
    eventTypes: list[str] = Field(description="The event types of the interactions.")
    contextFields: dict[str, list[str]] = Field(description="Contextual fields (e.g. DEVICE) and their values.")
    itemColumns: list[str] = Field(description="The Items metadata columns (what metadataColumns may ask for).")


class CampaignOverview(BaseModel):
    name: str = Field(description="The campaign's name (the last segment of a campaignArn).")
    solutionVersion: str = Field(description="The directory of the solution version it serves.")
    recipe: str = Field(description="The solution version's recipe.")
    created: str | None = Field(description="When the solution version was created (UTC).")
    hyperparameters: dict[str, Any] = Field(description="The recipe's hyperparameters.")
    personalizeMetrics: dict[str, float | None] = Field(description="The offline metrics, with Personalize's names.")
    settings: dict[str, Any] = Field(description="The campaign's settings (campaignConfig).")
    datasetGroup: DatasetGroup = Field(description="The data the solution version was trained on.")


class FilterOverview(BaseModel):
    name: str = Field(description="The filter's name (the last segment of a filterArn).")
    expression: str = Field(description="The filter expression.")
    parameters: list[str] = Field(description="Its placeholders ($NAME) without the $: the keys of filterValues.")


class Overview(BaseModel):
    campaigns: list[CampaignOverview] = Field(description="The campaigns this server serves.")
    filters: list[FilterOverview] = Field(description="The server's named filters.")
    storedEvents: int = Field(description="Events in the event store (PutEvents).")


class SolutionVersionSummary(BaseModel):
    path: str = Field(description="The solution version's directory.")
    recipe: str | None = Field(description="Its recipe.")
    created: str | None = Field(description="When it was created (UTC).")
    dataFingerprint: str | None = Field(description="Its training data's fingerprint (metrics compare on equal ones).")
    campaigns: list[str] = Field(description="The campaigns serving it now.")
    metrics: dict[str, float | None] = Field(description="Its offline metrics, with Personalize's names.")


class SolutionVersions(BaseModel):
    solutionVersions: list[SolutionVersionSummary] = Field(description="Oldest first.")
    roots: list[str] = Field(description="The directories searched.")


class MetadataItem(BaseModel):
    itemId: str = Field(description="The item.")
    metadata: dict[str, str] = Field(description=METADATA)


class CoOccurringItem(MetadataItem):
    users: int = Field(description="Users whose stored history has both items.")


class ItemLookup(BaseModel):
    campaign: str = Field(description="The campaign whose solution version answered.")
    itemId: str = Field(description="The item looked up.")
    known: bool = Field(description="Whether the solution version knows the item.")
    metadata: dict[str, str] = Field(description=METADATA)
    users: int = Field(description="Users whose stored history has the item.")
    events: int = Field(description="Stored interactions with the item.")
    coOccurring: list[CoOccurringItem] = Field(description="The items most often in the same users' histories.")


class HistoryEvent(BaseModel):
    itemId: str | None = Field(description="The event's item.")
    timestamp: float = Field(description="When it happened (epoch seconds).")
    eventType: str | None = Field(description="The event type.")
    source: Literal["stored", "streamed"] = Field(description=(
        "stored: in the solution version's training data; streamed: sent with PutEvents."))
    metadata: dict[str, str] = Field(description=METADATA)


class UserLookup(BaseModel):
    campaign: str = Field(description="The campaign whose solution version answered.")
    userId: str = Field(description="The user (or session id) looked up.")
    known: bool = Field(description="Whether the solution version has a stored history for the user.")
    metadata: dict[str, str] = Field(description=METADATA)
    storedEvents: int = Field(description="The length of the user's stored history.")
    streamedEvents: int = Field(description="The user's events in the event store, up to the limit read.")
    history: list[HistoryEvent] = Field(description="The user's newest events, stored and streamed, newest first.")


class StoreEvent(BaseModel):
    userId: str | None = Field(description="The user (none for an anonymous session's event).")
    sessionId: str = Field(description="The session.")
    eventType: str = Field(description="The event type.")
    itemId: str | None = Field(description="The item.")
    eventValue: float | None = Field(description="The event value.")
    sentAt: float = Field(description="When it happened (epoch seconds), as sent.")
    receivedAt: float = Field(description="When the server stored it (epoch seconds).")
    recommendationId: str | None = Field(description="The recommendation it followed, as sent.")
    properties: str | None = Field(description="The event's properties (JSON object text), as sent.")


class LatestEvents(BaseModel):
    total: int = Field(description="Events in the event store.")
    events: list[StoreEvent] = Field(description="The latest events to arrive, newest first.")


class IdSearch(BaseModel):
    ids: list[str] = Field(description="Ids that start with the prefix, in the solution version's order.")
