from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # Receipt numbers are the store's: two stores of a chain may both have order "0001".
        UniqueConstraint("store_id", "external_id"),
        Index("ix_orders_member_id_occurred_at", "member_id", "occurred_at"),
        Index("ix_orders_org_path_occurred_at", "org_path", "occurred_at"),
        # Covers the dashboard's active-member count (an index-only scan of the period).
        Index("ix_orders_occurred_at_member_id_org_path", "occurred_at", "member_id", "org_path"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    org_path: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger)
    points_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    # Money the points paid covered, and order-level coupons (minor units).
    points_paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # The paid amount of the lines that count toward tiers, and the part of it refunded.
    qualifying_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    qualifying_refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    line_points: Mapped[dict[str, Any]]
    breakdown: Mapped[list[Any]]
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    points_clawed: Mapped[int] = mapped_column(BigInteger, default=0)
    points_paid_restored: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(24))  # recorded | partially_returned | returned
    programme_version: Mapped[int | None]
    available_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
