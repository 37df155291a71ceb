from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class LeaderboardScore(Base):
    """A member's score on a board in one period (the period named by its first local day).

    ``reached_at`` is when the score last changed: of two equal scores the one reached first
    ranks higher, then the lower member id (ties break the same way every time).
    """

    __tablename__ = "leaderboard_score"
    __table_args__ = (
        UniqueConstraint("board", "period_start", "member_id"),
        Index("ix_leaderboard_score_rank", "board", "period_start", "score"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    board: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date]
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    score: Mapped[int] = mapped_column(BigInteger)
    reached_at: Mapped[datetime]
