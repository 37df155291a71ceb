from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class EventFailure(Base):
    """An event a consumer's handler failed on: retried with backoff while ``parked_at`` is
    empty (the consumer waits at it, keeping stream order), then parked (the consumer moves
    on; the row stays, visible, until it is retried by hand)."""

    __tablename__ = "event_failure"
    __table_args__ = (UniqueConstraint("consumer", "event_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    consumer: Mapped[str] = mapped_column(String(100), index=True)
    event_id: Mapped[str] = mapped_column(String(36))
    position: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int]
    last_error: Mapped[str] = mapped_column(Text)
    retry_at: Mapped[datetime]
    parked_at: Mapped[datetime | None]
    first_failed_at: Mapped[datetime]
