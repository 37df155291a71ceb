"""Friend-assist and group payloads."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from loyalist.kit.wire import Timestamp

MemberRef = int


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AssistStart(Strict):
    campaign: str = Field(min_length=1, max_length=64)
    member_id: int = Field(ge=1, le=2_147_483_647)


class HelpIn(Strict):
    member_id: int = Field(ge=1, le=2_147_483_647, description="the friend who helps")


class GroupOpen(Strict):
    campaign: str = Field(min_length=1, max_length=64)
    member_id: int = Field(ge=1, le=2_147_483_647, description="the leader")


class GroupJoin(Strict):
    member_id: int = Field(ge=1, le=2_147_483_647)


class AssistOut(BaseModel):
    id: int
    campaign: str
    starter_id: int
    needed: int
    helps: int
    status: str = Field(description="open | completed | expired")
    deadline: Timestamp
    completed_at: Timestamp | None
    helpers: list[int]


class GroupOut(BaseModel):
    id: int
    campaign: str
    leader_id: int
    size: int
    members: list[int]
    status: str = Field(
        description="forming | complete | dissolved | expired (awaiting dissolution)"
    )
    deadline: Timestamp
    completed_at: Timestamp | None
    dissolved_at: Timestamp | None


class CampaignOut(BaseModel):
    code: str
    name: str
    target: int = Field(description="helps needed (assist) or group size")
    hours: int


class CampaignsOut(BaseModel):
    assist: list[CampaignOut]
    groups: list[CampaignOut]
