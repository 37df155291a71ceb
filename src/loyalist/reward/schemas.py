from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from loyalist.kit.db import MAX_INT4


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedemptionCreate(Strict):
    member_id: int = Field(ge=1, le=MAX_INT4)
    reward: str = Field(min_length=1, max_length=64, description="reward code")
    quantity: int = Field(default=1, ge=1, le=100)
    store: str | None = Field(default=None, max_length=64)


class RedemptionCancel(Strict):
    reason: str = Field(default="", max_length=500)
