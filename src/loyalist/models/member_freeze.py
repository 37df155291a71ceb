from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class MemberFreeze(Base):
    """A frozen member (风控冻结): cannot redeem, pay with points or transfer until
    unfrozen; earning and the ledger go on as usual. Unfreezing deletes the row (the audit
    trail keeps the history)."""

    __tablename__ = "member_freeze"

    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(300))
    frozen_by: Mapped[str] = mapped_column(String(128))
    frozen_at: Mapped[datetime]
