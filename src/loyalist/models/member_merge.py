from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class MemberMerge(Base):
    """Two members merged into one (issue 13 item 2): ``merged_id`` now resolves to
    ``survivor_id``. ``moved`` names every row that moved (table → ids) and the lots and
    entries the ledger wrote, so the merge can be undone exactly; ``before`` keeps both
    members' figures as they were. status: done → undone."""

    __tablename__ = "member_merge"
    __table_args__ = (Index("ix_member_merge_merged_id_status", "merged_id", "status"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    moved: Mapped[dict[str, Any]]
    before: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    undo_until: Mapped[datetime]
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(128))
