from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class MemberLoginCode(Base):
    """A one-time sign-in code for the member page: stored hashed, short-lived, single-use.

    Every request for a code leaves a row (also for numbers that are not members, whose
    code is never sent and never matches), so the rows double as the send-rate counters
    per phone and per client address. ``phone_hash`` and ``ip_hash`` are digests, not PII.
    """

    __tablename__ = "member_login_code"
    __table_args__ = (
        Index("ix_member_login_code_phone_hash_created_at", "phone_hash", "created_at"),
        Index("ix_member_login_code_ip_hash_created_at", "ip_hash", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64))
    ip_hash: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"), index=True)
    salt: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # Set when the code can no longer be used: too many wrong guesses or a newer code.
    closed_at: Mapped[datetime | None]
