from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ActionReceipt(Base):
    """An action applied once for a cause (and member): claimed in the action's transaction.

    ``member_key`` is the member id, or 0 for an action without a member, so the unique
    constraint holds on every database (NULLs are never equal).
    """

    __tablename__ = "action_receipt"
    __table_args__ = (
        UniqueConstraint("cause", "action", "member_key", name="uq_action_receipt_cause_action"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    cause: Mapped[str] = mapped_column(String(191))
    action: Mapped[str] = mapped_column(String(64))
    member_key: Mapped[int]
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"), index=True)
    params: Mapped[dict[str, Any]]
    params_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
