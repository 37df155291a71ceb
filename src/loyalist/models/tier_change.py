from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class TierChange(Base):
    """Tier history: every upgrade and downgrade, with the metric value that caused it."""

    __tablename__ = "tier_change"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    from_tier: Mapped[str | None] = mapped_column(String(64))
    to_tier: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))  # join | upgrade | downgrade | reevaluation
    metric_value: Mapped[int] = mapped_column(BigInteger)
    period: Mapped[str | None] = mapped_column(String(16))
    programme_version: Mapped[int | None]
    occurred_at: Mapped[datetime] = mapped_column(index=True)
