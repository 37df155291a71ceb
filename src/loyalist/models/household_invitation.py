from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class HouseholdInvitation(Base):
    """The main member invited a member into their household.

    ``status``: pending → accepted | declined | expired | cancelled (the household was
    dissolved, or the main member withdrew it). At most one pending invitation per
    household and member (a partial unique index). ``can_spend`` is the permission the
    member gets on the pool when they accept.
    """

    __tablename__ = "household_invitation"
    __table_args__ = (
        Index(
            "ux_household_invitation_pending",
            "household_id",
            "member_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_household_invitation_member_id", "member_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    can_spend: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    invited_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
