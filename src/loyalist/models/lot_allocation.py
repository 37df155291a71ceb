from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class LotAllocation(Base):
    """How an entry moved points in or out of one lot (negative: taken, positive: restored)."""

    __tablename__ = "lot_allocation"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entry.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("points_lot.id"), index=True)
    points: Mapped[int] = mapped_column(BigInteger)
