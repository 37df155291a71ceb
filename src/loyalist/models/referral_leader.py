from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class ReferralLeader(Base):
    """A quarter's referral leader (enough qualified referrals), bonus paid once."""

    __tablename__ = "referral_leader"
    __table_args__ = (UniqueConstraint("period", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(8))  # e.g. 2026Q2 (programme's time zone)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    qualified: Mapped[int]
    created_at: Mapped[datetime]
