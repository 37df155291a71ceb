"""The answers of /v1/events (the events' own payload schemas live with the event types)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from loyalist.kit.wire import Timestamp


class EventOut(BaseModel):
    id: str
    sequence: int | None = Field(description="stream position (commit order)")
    type: str
    schema_version: int
    occurred_at: Timestamp
    member_id: int | None
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None
