"""Payloads of identity merge and duplicate candidates (issue 13 item 2)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalist.kit.db import MAX_INT4
from loyalist.kit.wire import Timestamp


class MergeIn(BaseModel):
    """Merge ``merged_id`` into ``survivor_id`` (preview it first)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    survivor_id: int = Field(ge=1, le=MAX_INT4, description="the member who stays")
    merged_id: int = Field(ge=1, le=MAX_INT4, description="the member merged into the survivor")


class MergeSide(BaseModel):
    member_id: int
    member_no: str
    tier: str
    available: int
    pending: int
    open_lots: int


class MergeConflict(BaseModel):
    code: str = Field(description="e.g. debt, shared_account, both_have_wechat_openid, kept_tags")
    detail: str
    blocking: bool = Field(description="true: the merge is refused (409) until it is resolved")


class MergePreviewOut(BaseModel):
    survivor: MergeSide
    merged: MergeSide
    moves: dict[str, int] = Field(description="rows that move to the survivor, per kind")
    kept: dict[str, int] = Field(description="rows that stay (the survivor holds the same)")
    conflicts: list[MergeConflict]
    can_merge: bool
    available_after: int
    pending_after: int
    tier_after: str


class MergeOut(BaseModel):
    id: int
    survivor_id: int
    merged_id: int
    status: Literal["done", "undone"]
    by: str
    created_at: Timestamp
    undo_until: Timestamp
    undone_at: Timestamp | None
    undone_by: str | None
    moved: dict[str, int] = Field(description="rows moved to the survivor, per kind")
    points_moved: int
    pending_moved: int


class CandidateOut(BaseModel):
    id: int
    member_a_id: int
    member_b_id: int
    reasons: list[str] = Field(description="phone, email, name_birthday")
    status: Literal["open", "merged", "dismissed"]
    created_at: Timestamp
    decided_at: Timestamp | None
    decided_by: str | None


class CandidateList(BaseModel):
    items: list[CandidateOut]
