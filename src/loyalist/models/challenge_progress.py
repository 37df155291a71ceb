from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ChallengeProgress(Base):
    """A member's progress in a time-limited challenge (one row per challenge and member)."""

    __tablename__ = "challenge_progress"
    __table_args__ = (UniqueConstraint("challenge", "member_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    challenge: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    progress: Mapped[int] = mapped_column(BigInteger)
    goal: Mapped[int] = mapped_column(BigInteger)
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
