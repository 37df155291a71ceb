from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ViralAssistHelp(Base):
    """One friend's help: once per assist (unique), never the starter (check)."""

    __tablename__ = "viral_assist_help"
    __table_args__ = (
        UniqueConstraint("assist_id", "helper_id"),
        CheckConstraint("helper_id <> starter_id", name="not_starter"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    assist_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("viral_assist.id"))
    starter_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    helper_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    created_at: Mapped[datetime]
