from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class MemberPass(Base):
    """One purchase (term) of a paid membership pass (付费会员).

    A renewal is a new row starting at the current term's end. The term covers the local
    days ``starts_on`` .. ``ends_on`` (inclusive) of the programme's zone; ``ends_at`` is the
    local midnight after the period (UTC). ``status``: active | refunded | expired.
    One row per ``purchase_key`` (the API's idempotency, or ``order:<id>:<line>``).
    """

    __tablename__ = "member_pass"
    __table_args__ = (
        UniqueConstraint("purchase_key"),
        Index("ix_member_pass_member_ends", "member_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    org_path: Mapped[str] = mapped_column(String(255))
    pass_code: Mapped[str] = mapped_column(String(64))
    purchase_key: Mapped[str] = mapped_column(String(191))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    programme_version: Mapped[int]
    renewal: Mapped[bool]
    status: Mapped[str] = mapped_column(String(16))
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    purchased_at: Mapped[datetime]
    refundable_until: Mapped[datetime]
    refunded_at: Mapped[datetime | None]
    expiring_sent_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
