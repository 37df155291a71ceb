from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ViralGroup(Base):
    """A group (拼团) forming in one campaign until its deadline.
    status: forming | complete | dissolved"""

    __tablename__ = "viral_group"
    __table_args__ = (Index("ix_viral_group_status_deadline", "status", "deadline"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    leader_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    org_path: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    members: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    deadline: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    dissolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
