from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class DuplicateCandidate(Base):
    """Two members who may be one person, found by the duplicate job (issue 13 item 2):
    ``member_a_id`` < ``member_b_id``; ``reasons`` e.g. ["phone", "name_birthday"].
    status: open → merged | dismissed (a dismissed pair is not proposed again)."""

    __tablename__ = "duplicate_candidate"
    __table_args__ = (UniqueConstraint("member_a_id", "member_b_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_a_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    member_b_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    reasons: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(128))
