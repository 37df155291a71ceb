from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class PointsLot(Base):
    """Points credited together, with one expiry. ``remaining`` never goes below zero.

    A lot belongs to a points account; ``member_id`` is the member who earned it.

    status: pending (not yet spendable) → available → closed (used up) | expired.
    A cancelled pending lot (clawed back before activation) is "void".
    """

    __tablename__ = "points_lot"
    __table_args__ = (
        Index("ix_points_lot_account_status_expires", "account_id", "status", "expires_at"),
        Index("ix_points_lot_status_available_at", "status", "available_at"),
        Index("ix_points_lot_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("points_account.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entry.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    source_type: Mapped[str | None] = mapped_column(String(32))
    source_id: Mapped[str | None] = mapped_column(String(128))
    earned_at: Mapped[datetime]
    available_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    reminded_days: Mapped[int | None]  # smallest reminder offset already announced
