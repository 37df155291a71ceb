from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class Checkin(Base):
    """A member's daily check-in: at most one per local day (programme zone, day start).

    ``streak`` is the streak length including this day, derived from the member's previous
    check-in (``habits.domain.streaks`` recomputes it from the days alone).
    """

    __tablename__ = "checkin"
    __table_args__ = (UniqueConstraint("member_id", "local_day"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    local_day: Mapped[date]
    streak: Mapped[int]
    checked_at: Mapped[datetime]
    programme_tz: Mapped[str] = mapped_column(String(64))
    client_tz: Mapped[str | None] = mapped_column(String(64))
