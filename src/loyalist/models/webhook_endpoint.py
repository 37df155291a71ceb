from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class WebhookEndpoint(Base):
    """An integrator's URL that receives signed event deliveries (Standard Webhooks).

    The signing secrets are stored encrypted (they must be recoverable to sign); during a
    rotation the previous secret keeps signing until ``previous_secret_until``.
    """

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    # None: every event type; otherwise the list of types this endpoint receives.
    event_types: Mapped[list[Any] | None]
    # Events whose org path starts with this one (and programme-wide events) are delivered.
    org_path: Mapped[str] = mapped_column(String(255), index=True)
    scope: Mapped[str] = mapped_column(String(64))  # the org unit's code
    enabled: Mapped[bool]
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    secret_enc: Mapped[str] = mapped_column(String(512))
    previous_secret_enc: Mapped[str | None] = mapped_column(String(512))
    previous_secret_until: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
