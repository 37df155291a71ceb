from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class WebhookDelivery(Base):
    """One event for one endpoint (unique), with its place in the retry schedule.

    ``run`` counts replays: each replay starts a new series of attempts (same webhook-id);
    a job carries the (run, step) it was enqueued for, so a stale job is a no-op.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("endpoint_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)  # outbox_event.event_id
    event_type: Mapped[str] = mapped_column(String(64))
    org_path: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|succeeded|failed
    run: Mapped[int]
    step: Mapped[int]  # attempts made in the current run
    attempts: Mapped[int]  # attempts made in every run
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
