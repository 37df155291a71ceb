from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class EventConsumer(Base):
    """One consumer's checkpoint in the event stream: every event at or below ``position``
    has been handled (or parked) by it. Locked while a batch runs, so two workers never run
    the same consumer at once."""

    __tablename__ = "event_consumer"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    handled: Mapped[int] = mapped_column(BigInteger, default=0)  # events handled, ever
    updated_at: Mapped[datetime]
