"""Requests and responses of /v1/webhooks."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_OVERLAP_S = 7 * 86_400


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointCreate(Strict):
    url: str = Field(min_length=1, max_length=2048, description="http or https URL")
    event_types: list[str] | None = Field(
        default=None,
        max_length=100,
        description="event types to receive; null or absent for every type",
    )
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    scope: str | None = Field(
        default=None,
        max_length=64,
        description="code of an org unit in the caller's scope (region or store): the "
        "endpoint receives only that unit's events (and programme-wide ones); "
        "default: the caller's own scope",
    )


class EndpointUpdate(Strict):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[str] | None = Field(
        default=None, max_length=100, description="null: every type"
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class RotateSecret(Strict):
    overlap_seconds: int = Field(
        default=86_400,
        ge=0,
        le=MAX_OVERLAP_S,
        description="how long the previous secret keeps signing (both signatures sent)",
    )


class ReplayRange(Strict):
    since: AwareDatetime = Field(description="events that occurred at or after this time")
    until: AwareDatetime = Field(description="… and before this time")


class Endpoint(BaseModel):
    id: int
    url: str
    description: str
    event_types: list[str] | None
    scope: str
    enabled: bool
    disabled_reason: str | None
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(Endpoint):
    secret: str = Field(description="the signing secret (whsec_…); shown only this once")


class EndpointPage(BaseModel):
    items: list[Endpoint]
    next_cursor: str | None


class Attempt(BaseModel):
    number: int
    run: int
    attempted_at: datetime
    webhook_timestamp: int
    status_code: int | None
    duration_ms: int
    outcome: str
    error: str | None
    response_body: str | None
    next_attempt_at: datetime | None


class Delivery(BaseModel):
    id: int
    endpoint_id: int
    event_id: str = Field(description="the event id, sent as webhook-id")
    event_type: str
    status: str = Field(description="pending | succeeded | failed")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class DeliveryDetail(Delivery):
    attempt_log: list[Attempt]


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None


class ReplayResult(BaseModel):
    deliveries: int = Field(description="deliveries scheduled for a new attempt")
