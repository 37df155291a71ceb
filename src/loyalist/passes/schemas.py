"""Wire shapes of the paid membership (pass) API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalist.kit.wire import Timestamp


class PassBuy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pass_: str = Field(
        alias="pass",
        pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$",
        description="the pass code in the programme's `passes:`",
    )
    order_id: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="the member's order that sold it (one pass purchase per order and pass)",
    )


class PassOut(BaseModel):
    id: int
    member_id: int
    pass_: str = Field(alias="pass")
    name: str
    name_en: str | None
    status: Literal["active", "refunded", "expired"]
    renewal: bool
    starts_on: dt.date = Field(description="first local day covered (programme's zone)")
    ends_on: dt.date = Field(description="last local day covered (inclusive)")
    starts_at: Timestamp
    ends_at: Timestamp = Field(description="the local midnight after the period")
    price_minor: int
    currency: str
    order_id: int | None
    purchased_at: Timestamp
    refundable_until: Timestamp
    refunded_at: Timestamp | None
    coupons_voided: int | None = Field(default=None, description="on a refund's answer")

    model_config = ConfigDict(populate_by_name=True)


class MemberPasses(BaseModel):
    member_id: int
    holding: PassOut | None = Field(description="the term in force now, if any")
    free_shipping: bool
    items: list[PassOut] = Field(description="every purchase, newest first")
