from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ReferralReward(Base):
    """One side's reward for one referral: friend, referrer or upline (level 2), once each
    (unique per referral and role), with what the actions gave (to claw it back)."""

    __tablename__ = "referral_reward"
    __table_args__ = (UniqueConstraint("referral_id", "role"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    referral_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("referral.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # friend | referrer | upline
    points: Mapped[int] = mapped_column(BigInteger)  # points credited by award_points
    results: Mapped[list[Any]]  # [{action, receipt_id, result}]
    clawed_back: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]
