from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class Referral(Base):
    """Who referred whom (老带新), and how far the referral got.

    One row per referred member (unique ``referred_id``): a member is referred once and
    rewarded at most once; the database refuses a self-referral (check constraint). The
    rows form the chain: the referrer's own referral (if any) is their upline.
    status: attributed | on_hold | qualified | rewarded | rejected
    """

    __tablename__ = "referral"
    __table_args__ = (
        CheckConstraint("referrer_id <> referred_id", name="not_self"),
        Index("ix_referral_referrer_id_status", "referrer_id", "status"),
        Index("ix_referral_status_qualified_at", "status", "qualified_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    referred_id: Mapped[int] = mapped_column(ForeignKey("member.id"), unique=True)
    code: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # join | claim
    org_path: Mapped[str] = mapped_column(String(255), index=True)  # the referred member's
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))  # why rejected
    hold_reasons: Mapped[list[Any]]  # shared identifier kinds, e.g. ["device_id"]
    order_id: Mapped[int | None] = mapped_column(BigInteger)  # the qualifying (first) order
    qualify_at: Mapped[datetime | None]  # the end of that order's return window
    qualified_at: Mapped[datetime | None]
    rewarded_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]  # a reviewer's decision on a hold
    decided_by: Mapped[str | None] = mapped_column(String(128))
    clawed_back_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
