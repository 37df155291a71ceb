from __future__ import annotations

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class MessageQuota(Base):
    """Marketing messages counted per member, channel and local day or week (frequency
    caps). Taken with a conditional update, so concurrent sends never exceed a cap."""

    __tablename__ = "message_quota"
    __table_args__ = (UniqueConstraint("member_id", "channel", "period"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int]
    channel: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16))  # d2026-12-06 | w2026-W49
    used: Mapped[int]
