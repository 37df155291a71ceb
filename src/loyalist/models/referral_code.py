from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class ReferralCode(Base):
    """A member's referral code (at most 32 characters: fits a mini-programme QR scene)."""

    __tablename__ = "referral_code"

    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime]
