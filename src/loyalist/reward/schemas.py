"""Reward and redemption payloads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loyalist.kit.db import MAX_INT4
from loyalist.kit.wire import Timestamp


class Strict(BaseModel):
    """An input: unknown fields refused, no coercion (``true`` or ``"5"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RedemptionCreate(Strict):
    member_id: int = Field(ge=1, le=MAX_INT4)
    reward: str = Field(min_length=1, max_length=64, description="reward code")
    quantity: int = Field(default=1, ge=1, le=100)
    store: str | None = Field(default=None, max_length=64)
    quote_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT4,
        description="a quote of this member and reward: within its validity its price is paid",
    )
    # Fraud controls (issue 13): the device the redemption came from, counted per device.
    device_id: str | None = Field(default=None, min_length=1, max_length=128)


class QuoteCreate(Strict):
    member_id: int = Field(ge=1, le=MAX_INT4)


class RedemptionCancel(Strict):
    reason: str = Field(default="", max_length=500)


class RedemptionCollect(Strict):
    store: str | None = Field(default=None, max_length=64, description="where it is handed over")


class RedemptionCollectByCode(RedemptionCollect):
    code: str = Field(
        min_length=1, max_length=32, description="the member's code; case and dashes ignored"
    )


class StockTopUp(Strict):
    quantity: int = Field(ge=1, le=1_000_000, strict=True)


# --- Answers -----------------------------------------------------------------------------


class RewardOut(BaseModel):
    code: str
    name: str
    name_en: str | None
    kind: str
    points: int
    cash_minor: int
    stock_remaining: int | None
    per_member_limit: int | None
    min_tier: str | None
    valid_from: Timestamp | None
    valid_until: Timestamp | None
    image_url: str | None
    description: str


class RewardCatalogue(BaseModel):
    items: list[RewardOut]


class RedemptionOut(BaseModel):
    id: int
    member_id: int
    reward: str | None = Field(description="reward code")
    quantity: int
    points: int
    cash_minor: int
    currency: str
    status: str = Field(description="completed | cancelled")
    state: str = Field(description="ready | collected | expired | cancelled")
    code: str | None = Field(description="counter code, e.g. ABCD-2345-WXYZ")
    expires_at: Timestamp | None
    collected_at: Timestamp | None
    entry_id: int
    cancel_entry_id: int | None
    created_at: Timestamp
    cancelled_at: Timestamp | None
    quote_id: int | None = Field(default=None, description="the quote it paid (dynamic price)")
    pricing: dict[str, Any] | None = Field(
        default=None,
        description="how the unit price was set: base_points, unit_points, ratio, rules, reason",
    )


class RewardStockOut(BaseModel):
    code: str
    stock_total: int | None
    stock_remaining: int | None
    stock_added: int


class RedemptionPage(BaseModel):
    items: list[RedemptionOut]
    next_cursor: str | None


class PriceRuleOut(BaseModel):
    code: str
    factor: str
    why: str


class QuoteOut(BaseModel):
    id: int = Field(description="quote id: give it as quote_id when redeeming")
    reward: str
    member_id: int
    points: int = Field(description="points per unit while the quote is valid")
    base_points: int
    cash_minor: int
    ratio: str
    reason: str
    rules: list[PriceRuleOut]
    created_at: Timestamp
    valid_until: Timestamp


class PriceOut(BaseModel):
    reward: str
    name: str
    base_points: int
    points: int
    ratio: str
    reason: str
