from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ViralGroupMember(Base):
    """A member of a group, once per group (unique)."""

    __tablename__ = "viral_group_member"
    __table_args__ = (UniqueConstraint("group_id", "member_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    group_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("viral_group.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    joined_at: Mapped[datetime]
