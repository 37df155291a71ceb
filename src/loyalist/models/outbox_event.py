from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class OutboxEvent(Base):
    """A domain event written in the same transaction as the change it describes."""

    __tablename__ = "outbox_event"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    schema_version: Mapped[int]
    member_id: Mapped[int | None] = mapped_column(index=True)
    org_path: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    # The event's place in the stream, given once it has committed (see
    # events.service.assign_positions): ids follow the order events were written, this
    # follows the order they became visible, so a reader's cursor never skips one.
    position: Mapped[int | None] = mapped_column(BigInteger, index=True, unique=True)
