from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class FraudCounter(Base):
    """A velocity counter of the fraud controls (风控): requests of one kind by one subject
    (a device, member, IP or store, kept as a keyed digest or an id) in one fixed window
    (``1m``, ``1h`` or the programme's local ``1d``) starting at ``bucket``; ``points`` sums
    their points. One upsert per counter key per request; old buckets are pruned by a job."""

    __tablename__ = "fraud_counter"
    __table_args__ = (Index("ix_fraud_counter_bucket", "bucket"),)

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # device|member|ip|store
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12), primary_key=True)  # order|redemption|members
    window: Mapped[str] = mapped_column(String(4), primary_key=True)  # 1m|1h|1d
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigInteger)
