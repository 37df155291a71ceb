from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class EventReceipt(Base):
    """A consumer handled an event: written in the transaction of the handler's effects, so
    a batch run again (after a crash, or a checkpoint moved back) never applies them twice."""

    __tablename__ = "event_receipt"
    __table_args__ = (
        UniqueConstraint("consumer", "event_id"),
        # the pruning job: receipts at or below a consumer's checkpoint
        Index("ix_event_receipt_consumer_position", "consumer", "position"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    consumer: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(36))
    position: Mapped[int] = mapped_column(BigInteger)
    handled_at: Mapped[datetime]
