from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class Message(Base):
    """One message to a member (or to an address, for a sign-in code before joining).

    Written by ``messaging.outbox.send`` in the caller's unit of work, with the text
    rendered, and delivered by the ``messaging.deliver`` job after commit. ``status``:
    ``queued`` → ``sent`` (handed to the provider) → ``delivered`` (provider receipt), or
    ``held`` (quiet hours, released at ``due_at``), ``suppressed`` (never sent; ``reason``
    says why), ``failed`` (no attempt left, or a permanent refusal), ``expired`` (a code
    whose time ran out before delivery). Rows written before channels existed (the
    development inbox) read as ``sent``.
    """

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_member_created", "member_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(254), index=True)
    template: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(8))
    params: Mapped[dict[str, Any]]
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(index=True)
    # -- channels (issue 14) ------------------------------------------------------------
    member_id: Mapped[int | None] = mapped_column(default=None)
    org_path: Mapped[str | None] = mapped_column(String(255), default=None)
    purpose: Mapped[str] = mapped_column(
        String(16), default="transactional", server_default="transactional"
    )
    status: Mapped[str] = mapped_column(String(16), default="sent", server_default="sent")
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    provider_id: Mapped[str | None] = mapped_column(String(128), default=None)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    fallback_of: Mapped[int | None] = mapped_column(default=None)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)
