from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class RewardQuote(Base):
    """A dynamic reward price quoted to a member (issue 15, item 5): a redemption that names
    it within ``valid_until`` pays ``points`` per unit, whatever the price is by then.
    Never changed once written."""

    __tablename__ = "reward_quote"
    __table_args__ = (Index("ix_reward_quote_member_reward", "member_id", "reward_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("reward.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    points: Mapped[int] = mapped_column(BigInteger)  # per unit
    base_points: Mapped[int] = mapped_column(BigInteger)
    explanation: Mapped[dict[str, Any]]
    programme_version: Mapped[int]
    created_at: Mapped[datetime]
    valid_until: Mapped[datetime]
