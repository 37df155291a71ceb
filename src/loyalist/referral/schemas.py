"""Referral payloads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalist.kit.wire import Timestamp

Code = str


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ClaimIn(Strict):
    """A member enters a friend's code after joining (within the programme's claim days,
    before their first order)."""

    member_id: int = Field(ge=1, le=2_147_483_647)
    code: str = Field(min_length=1, max_length=32, pattern=r"^\s*[A-Za-z0-9_-]+\s*$")


class SignalIn(Strict):
    """An identifier seen with a member (kept only as a keyed digest)."""

    member_id: int = Field(ge=1, le=2_147_483_647)
    kind: Literal["device_id", "phone", "address", "payment_token"]
    value: str = Field(min_length=1, max_length=500)


class DecisionIn(Strict):
    decision: Literal["approve", "reject"]
    note: str | None = Field(default=None, max_length=500)


class RewardOut(BaseModel):
    member_id: int
    role: str = Field(description="friend | referrer | upline")
    points: int
    clawed_back: int


class ReferralOut(BaseModel):
    id: int
    referrer_id: int
    referred_id: int
    code: str
    channel: str = Field(description="join | claim")
    status: str = Field(
        description="attributed | on_hold | qualified | rewarded | rejected | clawed_back"
    )
    reason: str | None = Field(description="why rejected (stable code)")
    hold_reasons: list[str] = Field(description="identifiers shared with the referrer")
    order_id: int | None
    qualify_at: Timestamp | None
    qualified_at: Timestamp | None
    rewarded_at: Timestamp | None
    decided_by: str | None
    created_at: Timestamp
    rewards: list[RewardOut]


class ReferralPage(BaseModel):
    items: list[ReferralOut]
    next_cursor: str | None


class CodeOut(BaseModel):
    """A member's referral code, share link and its QR code (drawn locally)."""

    member_id: int
    code: str = Field(max_length=32)
    link: str
    qr_png: str = Field(description="the QR code as a data: URL (image/png, base64)")
    qr_svg: str = Field(description="the QR code as SVG markup")
    referred_by: int | None = Field(description="who referred this member")
    referred: int = Field(description="members this member referred")
    qualified: int = Field(description="of them, qualified (rewarded included)")


class SignalOut(BaseModel):
    member_id: int
    kind: str
    held: list[int] = Field(description="referrals put on hold by this identifier")


class LeaderOut(BaseModel):
    period: str
    member_id: int
    qualified: int


class LeadersOut(BaseModel):
    period: str
    items: list[LeaderOut]


class StatsOut(BaseModel):
    """Referral counts in scope, and conversion (qualified / attributed)."""

    attributed: int
    on_hold: int
    qualified: int
    rejected: int
    clawed_back: int
    conversion: float
