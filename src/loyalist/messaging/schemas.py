"""API shapes of the consent ledger, subscribe authorisations and a member's messages."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """An input: unknown fields refused, no coercion (``0`` is not ``false``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ConsentRecordIn(Strict):
    purpose: Literal["marketing", "personalisation", "analytics"]
    channel: Literal["sms", "email", "push", "wechat", "any"]
    granted: bool
    text_version: str = Field(min_length=1, max_length=32)
    source: str = Field(min_length=1, max_length=64)


class ConsentRecordOut(BaseModel):
    id: int
    purpose: str
    channel: str
    granted: bool
    text_version: str
    source: str
    actor: str | None
    recorded_at: datetime


class ConsentRecords(BaseModel):
    items: list[ConsentRecordOut]


class AuthorisationIn(Strict):
    template_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    count: int = Field(default=1, ge=1, le=100)


class AuthorisationOut(BaseModel):
    template_id: str
    remaining: int


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    outcome: str
    code: str | None
    provider_id: str | None


class MessageOut(BaseModel):
    id: int
    channel: str
    template: str
    purpose: str
    status: Literal["queued", "held", "sent", "delivered", "suppressed", "failed", "expired"]
    reason: str | None
    created_at: datetime
    due_at: datetime | None
    sent_at: datetime | None
    attempts: list[AttemptOut]


class MessageList(BaseModel):
    items: list[MessageOut]
