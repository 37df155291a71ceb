from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.crypto import Encrypted, blind
from loyalist.kit.db import Base


class MemberIdentity(Base):
    """One way of recognising a member: phone, email, app id, WeChat openid, POS card."""

    __tablename__ = "member_identity"
    __table_args__ = (UniqueConstraint("kind", "value_bidx"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Encrypted at rest (kit.crypto); looked up by ``value_bidx``, its keyed blind index.
    value: Mapped[str] = mapped_column(Encrypted("member_identity.value"))
    value_bidx: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


@event.listens_for(MemberIdentity.value, "set")
def _value_set(target: MemberIdentity, value: str | None, _old: Any, _initiator: Any) -> None:
    # The kind is given before the value by every constructor call (keyword order); a
    # value set first is indexed again when the kind is set.
    if value and target.kind:
        target.value_bidx = blind(target.kind, value)


@event.listens_for(MemberIdentity.kind, "set")
def _kind_set(target: MemberIdentity, kind: str | None, _old: Any, _initiator: Any) -> None:
    value = target.__dict__.get("value")
    if kind and value:
        target.value_bidx = blind(kind, value)
