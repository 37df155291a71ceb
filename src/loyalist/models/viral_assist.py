from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ViralAssist(Base):
    """A friend-assist (好友助力) started by one member in one campaign (once per campaign).
    status: open | completed | expired"""

    __tablename__ = "viral_assist"
    __table_args__ = (UniqueConstraint("campaign", "starter_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    starter_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    org_path: Mapped[str] = mapped_column(String(255))
    needed: Mapped[int]
    helps: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    deadline: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
