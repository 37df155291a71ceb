from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ReferralSignal(Base):
    """An identifier seen with a member (device id, phone, address, payment token), kept
    only as a keyed digest: two members sharing one put their referral on hold."""

    __tablename__ = "referral_signal"
    __table_args__ = (
        UniqueConstraint("member_id", "kind", "digest"),
        Index("ix_referral_signal_kind_digest", "kind", "digest"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    kind: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
