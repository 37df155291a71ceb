"""Adjustment request payloads (four-eyes approval)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class AdjustmentRequestOut(BaseModel):
    """A manual adjustment waiting for (or decided by) a second person."""

    id: int
    member_id: int
    points: int
    reason: str
    status: Literal["pending", "approved", "rejected"]
    cause: Literal["threshold", "key_limit", "daily_budget"] = Field(
        description="Why it waits: above the approval threshold, above the API key's "
        "approval-free limit, or beyond the user's daily adjustment budget."
    )
    requested_by: str
    created_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    ledger_entry_id: int | None = Field(description="The ledger entry once approved.")


class AdjustmentRequestPage(BaseModel):
    items: list[AdjustmentRequestOut]
    next_cursor: str | None
