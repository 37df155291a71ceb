from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class FraudCheck(Base):
    """One order or redemption the fraud controls looked at (allowed or held; a blocked
    request is refused and leaves nothing), with its signals as keyed digests, what the
    live rules decided and what the shadow rules would have done. The history a backtest
    replays."""

    __tablename__ = "fraud_check"
    __table_args__ = (Index("ix_fraud_check_checked_at", "checked_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))  # order | redemption
    member_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    device: Mapped[str | None] = mapped_column(String(64))  # keyed digest of the device id
    ip: Mapped[str | None] = mapped_column(String(64))  # keyed digest of the client IP
    store_id: Mapped[int | None] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    source_id: Mapped[int | None] = mapped_column(BigInteger)  # the order or redemption
    outcome: Mapped[str] = mapped_column(String(8))  # allow | hold
    rule: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(300))
    shadow: Mapped[list[Any]]  # [{"rule": code, "outcome": hold|block}] would-be outcomes
    doc_version: Mapped[int | None] = mapped_column(Integer)
    checked_at: Mapped[datetime]
