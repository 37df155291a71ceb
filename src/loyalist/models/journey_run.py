from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class JourneyRun(Base):
    """One member's pass through one journey.

    ``active_member`` is the member id while the run is active and NULL once it ended, so
    the unique (journey_key, active_member) allows at most one active run per member per
    journey on every database (NULLs are never equal) and any number of ended ones.
    """

    __tablename__ = "journey_run"
    __table_args__ = (
        UniqueConstraint("journey_key", "active_member", name="uq_journey_run_active"),
        Index("ix_journey_run_journey_key_state", "journey_key", "state"),
        Index("ix_journey_run_member_id_state", "member_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    journey_key: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    active_member: Mapped[int | None]
    org_path: Mapped[str] = mapped_column(String(255))  # the member's, for scope
    version: Mapped[int]  # the journeys document version the member entered with
    state: Mapped[str] = mapped_column(String(16))  # active | completed | exited | holdout
    step: Mapped[str | None] = mapped_column(String(48))  # the step it waits at
    due_at: Mapped[datetime | None]  # when that wait (or wait-for-event timeout) ends
    waiting_event: Mapped[str | None] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(64))  # the entering event id or day
    exit_reason: Mapped[str | None] = mapped_column(String(64))
    variants: Mapped[dict[str, Any]]  # experiment -> variant
    entered_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
