from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class MessageAttempt(Base):
    """One hand-over of a message to its provider, with the provider's answer (receipt)."""

    __tablename__ = "message_attempt"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(index=True)
    attempt: Mapped[int]
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))  # sent | failed | refused
    code: Mapped[str | None] = mapped_column(String(64))  # the provider's code
    detail: Mapped[str | None] = mapped_column(String(500))
    provider_id: Mapped[str | None] = mapped_column(String(128))  # BizId, msgid, Message-ID
