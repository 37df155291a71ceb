from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class MessageAuthorisation(Base):
    """WeChat mini-programme subscribe-message authorisations a member has granted
    (each wx.requestSubscribeMessage "allow" is one); a send consumes one."""

    __tablename__ = "message_authorisation"
    __table_args__ = (UniqueConstraint("member_id", "template_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int]
    template_id: Mapped[str] = mapped_column(String(128))
    remaining: Mapped[int]
    updated_at: Mapped[datetime]
