from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class MemberBadge(Base):
    """A badge a member earned: once per member and badge (a unique constraint)."""

    __tablename__ = "member_badge"
    __table_args__ = (UniqueConstraint("member_id", "badge"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    badge: Mapped[str] = mapped_column(String(64))
    awarded_at: Mapped[datetime]
    event_id: Mapped[str | None] = mapped_column(String(36))
