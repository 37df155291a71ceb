from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class ConsentRecord(Base):
    """The consent ledger: every grant or withdrawal, per purpose and channel, with the
    version of the text the member saw and where it was given. Append-only; the latest
    row per (member, purpose, channel) is the member's current choice."""

    __tablename__ = "consent_record"
    __table_args__ = (Index("ix_consent_record_member", "member_id", "purpose", "channel", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int]
    purpose: Mapped[str] = mapped_column(String(24))  # marketing | personalisation | analytics
    channel: Mapped[str] = mapped_column(String(16))  # sms | email | push | wechat | any
    granted: Mapped[bool]
    text_version: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128))
    recorded_at: Mapped[datetime]
