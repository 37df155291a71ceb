from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class LeaderboardPeriod(Base):
    """A closed (archived) period of a board: its final standings, closed exactly once."""

    __tablename__ = "leaderboard_period"
    __table_args__ = (UniqueConstraint("board", "period_start"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    board: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date]
    period_end: Mapped[date]
    closed_at: Mapped[datetime]
    standings: Mapped[list[Any]]
    rewarded: Mapped[int]
