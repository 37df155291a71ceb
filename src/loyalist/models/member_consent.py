from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class MemberConsent(Base):
    """Marketing consent per channel (sms, email, push, wechat), with when it was given."""

    __tablename__ = "member_consent"
    __table_args__ = (UniqueConstraint("member_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool]
    source: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]
