from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class FraudReview(Base):
    """An item of the fraud review queue: points held by a rule wait in a non-spendable
    (pending) lot until a reviewer approves (the lot becomes available) or rejects (the
    points are reversed). status: pending | approved | rejected"""

    __tablename__ = "fraud_review"
    __table_args__ = (Index("ix_fraud_review_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    check_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    member_id: Mapped[int] = mapped_column(BigInteger, index=True)
    account_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int] = mapped_column(BigInteger)
    lot_id: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(300))
    org_path: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(12))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
