"""Member payloads."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalist.kit.wire import DateIn, Timestamp

Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s,][^,]*$")]


class Strict(BaseModel):
    """An input: unknown fields refused, no coercion (``true`` or ``"5"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class IdentityIn(Strict):
    kind: Literal["phone", "email", "app_id", "wechat_openid", "pos_card"]
    value: str = Field(min_length=1, max_length=254)


class MemberCreate(Strict):
    external_id: str | None = Field(default=None, min_length=1, max_length=128)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    name: str | None = Field(default=None, max_length=128)
    birthday: DateIn | None = None
    gender: Literal["female", "male", "other", "unknown"] | None = None
    city: str | None = Field(default=None, max_length=64)
    home_store: str | None = Field(default=None, max_length=64)
    join_channel: str | None = Field(default=None, max_length=32)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    consents: dict[Literal["sms", "email", "push", "wechat"], bool] = Field(default_factory=dict)
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)
    # Kept for the referral feature (stored, not acted on yet).
    referral_code: str | None = Field(
        default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$"
    )


class MemberUpdate(Strict):
    email: str | None = Field(default=None, max_length=254)
    name: str | None = Field(default=None, max_length=128)
    birthday: DateIn | None = None
    gender: Literal["female", "male", "other", "unknown"] | None = None
    city: str | None = Field(default=None, max_length=64)
    home_store: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)


class ConsentIn(Strict):
    granted: bool
    source: str | None = Field(default=None, max_length=64)


class TagsIn(Strict):
    add: list[Tag] = Field(default_factory=list, max_length=50)
    remove: list[Tag] = Field(default_factory=list, max_length=50)


class AdjustmentIn(Strict):
    points: int = Field(ge=-10_000_000, le=10_000_000, json_schema_extra={"not": {"const": 0}})
    reason: str = Field(min_length=3, max_length=500)


class MemberFilter(BaseModel):
    """Search criteria (built by the endpoints and the console, not parsed from a body)."""

    model_config = ConfigDict(extra="forbid")

    phone: str | None = None
    email: str | None = None
    identity_type: Literal["phone", "email", "app_id", "wechat_openid", "pos_card"] | None = None
    identity: str | None = None
    tier: str | None = None
    tag: str | None = None
    store: str | None = None
    q: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None


# --- Answers -----------------------------------------------------------------------------


class MemberSummary(BaseModel):
    """A member as lists show it."""

    id: int
    member_no: str
    external_id: str | None
    phone: str | None
    email: str | None
    name: str | None
    birthday: dt.date | None
    gender: str | None
    city: str | None
    home_store_id: int | None
    join_channel: str | None
    status: str
    tier: str = Field(description="the member's tier code")
    created_at: Timestamp


class MemberPage(BaseModel):
    items: list[MemberSummary]
    next_cursor: str | None


class Identity(BaseModel):
    kind: str
    value: str


class ExpiringPoints(BaseModel):
    expires_at: Timestamp
    points: int


class PointsBalance(BaseModel):
    available: int
    pending: int
    debt: int
    lifetime_earned: int
    expiring_30d: int
    expiring: list[ExpiringPoints]


class NextTier(BaseModel):
    code: str
    name: str | None
    missing: int | None


class KeepTier(BaseModel):
    threshold: int
    missing: int


class TierStatus(BaseModel):
    code: str
    name: str
    since: Timestamp
    expires_at: Timestamp | None
    metric: str
    value: int
    next: NextTier | None
    keep: KeepTier


class MemberProfile(BaseModel):
    """A member with balance, tier and progress."""

    id: int
    member_no: str
    external_id: str | None
    phone: str | None
    email: str | None
    name: str | None
    birthday: dt.date | None
    gender: str | None
    city: str | None
    home_store_id: int | None
    join_channel: str | None
    status: str
    tier: TierStatus
    created_at: Timestamp
    tags: list[str]
    consents: dict[str, bool]
    identities: list[Identity]
    points: PointsBalance


class Identities(BaseModel):
    identities: list[Identity]


class Tags(BaseModel):
    tags: list[str]


class Consents(BaseModel):
    consents: dict[str, bool]


class EntrySource(BaseModel):
    type: str
    id: str | None


class LedgerEntryOut(BaseModel):
    """One ledger entry (points moved between available, pending and debt)."""

    id: int
    kind: str
    member_id: int = Field(description="who caused it (on a shared account: which member)")
    account_id: int = Field(description="the points account it belongs to")
    available: int
    pending: int
    debt: int
    source: EntrySource | None
    actor: str | None
    reason: str | None
    corrects_entry_id: int | None
    programme_version: int | None
    details: dict[str, Any] | None
    occurred_at: Timestamp
    created_at: Timestamp


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut]
    next_cursor: str | None


class TierChangeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_tier: str | None = Field(alias="from")
    to: str
    reason: str
    metric_value: int
    period: str | None
    programme_version: int | None
    occurred_at: Timestamp


class TierHistory(BaseModel):
    items: list[TierChangeOut]
