from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class WebhookAttempt(Base):
    """One HTTP request of a delivery: what was sent when, and what came back."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_delivery.id"), index=True)
    run: Mapped[int]
    number: Mapped[int]  # 1-based, across runs
    attempted_at: Mapped[datetime]
    webhook_timestamp: Mapped[int]
    status_code: Mapped[int | None]
    duration_ms: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(16))  # succeeded|retry|failed|gone|refused
    error: Mapped[str | None] = mapped_column(String(500))
    response_body: Mapped[str | None] = mapped_column(String(2048))
    next_attempt_at: Mapped[datetime | None]
