from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class OrderReturn(Base):
    __tablename__ = "order_return"
    __table_args__ = (UniqueConstraint("order_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(128))
    lines: Mapped[list[Any]]
    refund_minor: Mapped[int] = mapped_column(BigInteger)
    points_clawed: Mapped[int] = mapped_column(BigInteger)
    points_waived: Mapped[int] = mapped_column(BigInteger, default=0)
    points_restored: Mapped[int] = mapped_column(BigInteger)
    # The order's points that had expired before the return: reported, taken from nowhere.
    points_expired: Mapped[int] = mapped_column(BigInteger, default=0)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]
