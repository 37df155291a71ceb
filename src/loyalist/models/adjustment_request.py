from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class AdjustmentRequest(Base):
    """A large manual points adjustment waiting for a second person's approval."""

    __tablename__ = "adjustment_request"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    org_path: Mapped[str] = mapped_column(String(255), index=True)
    points: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|approved|rejected
    requested_by: Mapped[str] = mapped_column(String(128))  # actor name
    requested_principal: Mapped[str] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    # Why it waits: threshold | key_limit | daily_budget
    cause: Mapped[str] = mapped_column(String(16), default="threshold")
    created_at: Mapped[datetime]
