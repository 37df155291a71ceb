from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class CouponMemberUse(Base):
    """How many coupons of a template a member has used (the per-member limit)."""

    __tablename__ = "coupon_member_use"
    __table_args__ = (CheckConstraint("uses >= 0", name="uses_positive"),)

    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_template.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), primary_key=True)
    uses: Mapped[int] = mapped_column(BigInteger, default=0)
