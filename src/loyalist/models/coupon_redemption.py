from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class CouponRedemption(Base):
    """A code used on an order (the order is the store's receipt: store id + external id)."""

    __tablename__ = "coupon_redemption"
    __table_args__ = (Index("ix_coupon_redemption_order", "order_store_id", "order_external_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("coupon_code.id"), index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_template.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"), index=True)
    order_store_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    order_external_id: Mapped[str] = mapped_column(String(128))
    discount_minor: Mapped[int] = mapped_column(BigInteger)
    line_discounts: Mapped[dict[str, Any]]  # {"line_no": minor}
    status: Mapped[str] = mapped_column(String(16))  # redeemed | restored
    redeemed_at: Mapped[datetime]
    restored_at: Mapped[datetime | None]
