"""Member payloads."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s,][^,]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityIn(Strict):
    kind: Literal["phone", "email", "app_id", "wechat_openid", "pos_card"]
    value: str = Field(min_length=1, max_length=254)


class MemberCreate(Strict):
    external_id: str | None = Field(default=None, min_length=1, max_length=128)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    name: str | None = Field(default=None, max_length=128)
    birthday: dt.date | None = None
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
    birthday: dt.date | None = None
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


class MemberFilter(Strict):
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
