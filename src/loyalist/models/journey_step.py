from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class JourneyStep(Base):
    """A step a run passed: claimed (unique per run and step) before its effect runs, so a
    step's effect happens at most once per run, whatever crashes and retries."""

    __tablename__ = "journey_step"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id", name="uq_journey_step_run_step"),
        Index("ix_journey_step_journey_key_step_id", "journey_key", "step_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("journey_run.id"))
    journey_key: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(16))  # the step's type
    # done | sent | queued | held | suppressed | failed | skipped_overdue | yes | no |
    # event | timeout | <variant name>
    outcome: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]
    at: Mapped[datetime]
