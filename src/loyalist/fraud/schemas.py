"""The fraud controls' API schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionIn(_Strict):
    decision: Literal["approve", "reject"]
    note: str | None = Field(default=None, max_length=500)


class FreezeIn(_Strict):
    reason: str = Field(min_length=1, max_length=300)


class ReviewOut(BaseModel):
    id: int
    member_id: int
    order_id: int
    points: int = Field(description="points held (pending until decided)")
    rule: str
    reason: str
    status: Literal["pending", "approved", "rejected"]
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    created_at: datetime


class ReviewList(BaseModel):
    items: list[ReviewOut]


class FreezeOut(BaseModel):
    member_id: int
    frozen: bool
    reason: str | None = None
    frozen_by: str | None = None
    frozen_at: datetime | None = None


class BacktestOut(BaseModel):
    rule: str
    mode: Literal["live", "shadow"] | None = Field(
        description="the rule's mode in the current document"
    )
    outcome: Literal["hold", "block"]
    since: datetime
    until: datetime
    checked: int = Field(description="requests of the kinds the rule looks at")
    hits: int = Field(description="requests the rule would hold or block")
    members: int = Field(description="distinct members it would hit")
    shadow_hits: int = Field(description="what shadow mode logged for it on the same traffic")
    live_holds: int = Field(description="requests it held live on the same traffic")
    sample_check_ids: list[int]
