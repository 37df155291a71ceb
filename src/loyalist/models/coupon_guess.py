from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class CouponGuess(Base):
    """Unknown codes presented per subject (an API key or a member) and window: throttling."""

    __tablename__ = "coupon_guess"

    subject: Mapped[str] = mapped_column(String(191), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
