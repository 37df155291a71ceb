"""The API's recommendation shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Reason(BaseModel):
    zh_CN: str = Field(description="the reason in Chinese")
    en: str = Field(description="the reason in English")


class RecommendationOut(BaseModel):
    kind: Literal["product", "reward"]
    item: str = Field(description="the SKU, or the reward's code")
    name: str
    category: str | None = Field(description="the product's category (products only)")
    points: int | None = Field(description="the reward's price in points (rewards only)")
    score: float
    source: Literal["als", "popular"] = Field(
        description="als: from the member's own history; popular: their store's or region's"
    )
    reason: Reason


class RecommendationsOut(BaseModel):
    member_id: int
    personalised: bool = Field(
        description="false when the member has not consented to personalisation (PIPL art. 24)"
        " or has no history yet: the list is then the popularity list of their store or region"
    )
    computed_at: datetime | None = Field(description="when the nightly job computed the list")
    products: list[RecommendationOut]
    rewards: list[RecommendationOut]
