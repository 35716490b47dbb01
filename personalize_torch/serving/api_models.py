"""Request and response bodies of Personalize Runtime, with botocore's field names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from personalize_torch.serving.predictor import MAX_RESULTS


class Promotion(BaseModel):
    name: str | None = None
    percentPromotedItems: int | None = None
    filterArn: str | None = None
    filterValues: dict[str, str] | None = None


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
    promotions: list[Promotion] | None = None
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
