from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class MemberTask(Base):
    """A follow-up for staff about one member (opened by the ``open_task`` action)."""

    __tablename__ = "member_task"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    org_path: Mapped[str] = mapped_column(String(255), index=True)  # the member's, for scope
    title: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(2000))
    due_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # open | done | cancelled
    created_by: Mapped[str] = mapped_column(String(191))  # the cause that opened it
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(128))
