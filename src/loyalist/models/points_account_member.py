from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class PointsAccountMember(Base):
    """A member's membership of a points account, kept after they leave (history).

    A member draws on exactly one account at a time: the row with ``left_at`` NULL (a
    partial unique index). ``role`` is "owner" (the account's owner, who never leaves it)
    or "member"; ``can_spend`` says whether the member may spend the account's points
    (the owner always may). Earning into the account needs no permission.
    """

    __tablename__ = "points_account_member"
    __table_args__ = (
        Index(
            "ux_points_account_member_active",
            "member_id",
            unique=True,
            sqlite_where=text("left_at IS NULL"),
            postgresql_where=text("left_at IS NULL"),
        ),
        Index("ix_points_account_member_account_id", "account_id", "left_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("points_account.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    role: Mapped[str] = mapped_column(String(16))
    can_spend: Mapped[bool] = mapped_column(Boolean)
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    added_by: Mapped[str | None] = mapped_column(String(128))
    removed_by: Mapped[str | None] = mapped_column(String(128))
