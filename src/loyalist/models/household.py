from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class Household(Base):
    """A household (家庭账户): a main member and the members they invited, sharing the main
    member's points account (its pool, see :mod:`loyalist.ledger.service`, shared accounts).

    Who draws on the pool is the ledger's ``points_account_member``; this row only names the
    household, its main member and its account. One active household per main member
    (a partial unique index); a dissolved household stays as history.
    """

    __tablename__ = "household"
    __table_args__ = (
        Index(
            "ux_household_owner_active",
            "owner_member_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_household_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    owner_member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("points_account.id"))
    org_path: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # active | dissolved
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))
    dissolved_at: Mapped[datetime | None]
    dissolved_by: Mapped[str | None] = mapped_column(String(128))
