from __future__ import annotations

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class RewardUsage(Base):
    """How many of a reward a member holds (redeemed minus cancelled): the per-member limit."""

    __tablename__ = "reward_usage"

    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("reward.id"), primary_key=True)
    used: Mapped[int] = mapped_column(default=0)
