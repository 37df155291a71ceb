from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class MemberTag(Base):
    __tablename__ = "member_tag"
    __table_args__ = (UniqueConstraint("member_id", "tag"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]
