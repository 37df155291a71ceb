from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class HabitActivity(Base):
    """One rewarded activity (sign-up, review, share …): unique per member, kind and ref.

    ``points`` is what the ledger credited (0 when a cap left nothing); ``entry_id`` that
    ledger entry. Caps per day and lifetime are sums over these rows under the account lock.
    """

    __tablename__ = "habit_activity"
    __table_args__ = (UniqueConstraint("member_id", "activity", "ref"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    activity: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(128))
    local_day: Mapped[date]
    points: Mapped[int]
    capped: Mapped[str | None] = mapped_column(String(16))
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entry.id"))
    occurred_at: Mapped[datetime]
