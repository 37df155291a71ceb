from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class CouponCode(Base):
    """One code: of a batch (anyone may present it) or issued to a member."""

    __tablename__ = "coupon_code"
    __table_args__ = (
        Index("ix_coupon_code_member_id_template_id", "member_id", "template_id"),
        CheckConstraint("uses >= 0", name="uses_positive"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_template.id"), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_batch.id"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    # The cause that issued it (staff, API, reward, action): one code per cause.
    issue_key: Mapped[str | None] = mapped_column(String(191), unique=True)
    source: Mapped[str] = mapped_column(
        String(16)
    )  # batch | import | staff | api | reward | action
    uses: Mapped[int] = mapped_column(BigInteger, default=0)
    valid_from: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
