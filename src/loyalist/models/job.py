from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK

JOB_STATES = ("queued", "running", "done", "failed", "dead", "cancelled")


class Job(Base):
    """A durable job: written in the caller's transaction, claimed by one worker at a time.

    ``queued`` jobs are due from ``run_at``; a claim makes them ``running`` with a lease
    (``locked_by``, ``lease_until``) and counts the attempt; the handler's transaction marks
    them ``done``; a failure makes them ``failed`` with a later ``run_at`` (backoff) and the
    error in ``last_error`` (due again from then), or ``dead`` after ``max_attempts``. A
    ``running`` job whose lease expired (its worker died) is claimed again. ``dedupe_key``
    is unique: the same key enqueued twice is one job. ``cancelled`` jobs never run.
    """

    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_state_run_at", "state", "run_at"),
        Index("ix_job_state_lease_until", "state", "lease_until"),
        Index("ix_job_kind_state", "kind", "state"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    run_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
