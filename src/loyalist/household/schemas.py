"""Household payloads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loyalist.kit.wire import Timestamp

MemberRef = int


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class HouseholdCreate(Strict):
    """The main member whose own points account becomes the household's pool."""

    member_id: int = Field(ge=1, le=2_147_483_647)


class InvitationCreate(Strict):
    """Invite a member by member id or by phone (exactly one); ``can_spend``: whether they
    may spend the pool's points once they accept (earning into it needs no permission)."""

    member_id: int | None = Field(default=None, ge=1, le=2_147_483_647)
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    can_spend: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> InvitationCreate:
        if (self.member_id is None) == (self.phone is None):
            raise ValueError("give exactly one of member_id and phone")
        return self


class InvitationAnswer(Strict):
    """Accepting an invitation. A member whose own account holds points must consent to
    move them into the pool (``transfer_points``): they become the pool's, and stay in it
    if the member leaves later. Without consent such an acceptance is refused (409
    ``household_points_to_transfer``, with the points)."""

    transfer_points: bool = False


class PermissionIn(Strict):
    can_spend: bool


class PoolOut(BaseModel):
    account_id: int
    available: int
    pending: int
    debt: int


class HouseholdMemberOut(BaseModel):
    """A membership of the pool (former ones kept: leaving keeps the history), with what
    the member earned into the pool and spent from it while a member (points)."""

    member_id: int
    role: Literal["main", "member"]
    can_spend: bool
    joined_at: Timestamp
    left_at: Timestamp | None
    earned: int = Field(description="points the member's orders earned into the pool")
    spent: int = Field(description="points the member redeemed from the pool")


class InvitationOut(BaseModel):
    id: int
    household_id: int
    owner_member_id: int
    member_id: int
    can_spend: bool
    status: Literal["pending", "accepted", "declined", "expired", "cancelled"]
    invited_by: str | None
    created_at: Timestamp
    expires_at: Timestamp
    decided_at: Timestamp | None


class HouseholdOut(BaseModel):
    id: int
    owner_member_id: int
    status: Literal["active", "dissolved"]
    max_members: int
    qualifies_together: bool
    pool: PoolOut
    members: list[HouseholdMemberOut]
    invitations: list[InvitationOut]
    created_at: Timestamp
    dissolved_at: Timestamp | None


class HouseholdSummary(BaseModel):
    id: int
    owner_member_id: int
    status: Literal["active", "dissolved"]
    members: int = Field(description="members drawing on the pool now, the main member included")
    available: int
    created_at: Timestamp


class HouseholdPage(BaseModel):
    items: list[HouseholdSummary]
    next_cursor: str | None


class MemberHouseholdOut(BaseModel):
    """A member's household now (none: null) and the invitations waiting for their answer."""

    member_id: int
    household: HouseholdOut | None
    invitations: list[InvitationOut]
