from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class HabitFact(Base):
    """A counted fact about a member taken from the event stream (an order, its spend, a
    category bought, a check-in, a referral, a review, a survey answer, a share).

    Badge and challenge counters are sums over these rows in a time window. Written by the
    ``habits`` consumer, once per event (its receipts; the unique key is the backstop).
    """

    __tablename__ = "habit_fact"
    __table_args__ = (
        UniqueConstraint("event_id", "counter", "label"),
        Index("ix_habit_fact_member_counter", "member_id", "counter", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    counter: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    event_id: Mapped[str] = mapped_column(String(36))
