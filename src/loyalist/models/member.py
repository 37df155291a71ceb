from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.crypto import Encrypted, EncryptedDate, blind, fold
from loyalist.kit.db import Base


class Member(Base):
    __tablename__ = "member"
    __table_args__ = (
        # Covers the dashboard's member counts, tier distribution and members-in-scope joins
        # (index-only scans); text_pattern_ops lets PostgreSQL use it for a scope's
        # "org_path LIKE 'prefix%'" whatever the database's collation.
        Index(
            "ix_member_org_path_tier_code_created_at",
            "org_path",
            "tier_code",
            "created_at",
            "id",
            postgresql_ops={"org_path": "text_pattern_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_no: Mapped[str] = mapped_column(String(32), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    # Personal fields are encrypted at rest (kit.crypto, issue 13); they are looked up by
    # their keyed blind index (kept by the attribute events below), never by value.
    # ``Member.phone == v`` (and email, name) compares the blind index (kit.crypto).
    phone: Mapped[str | None] = mapped_column(
        Encrypted("member.phone", index_column="phone_bidx", index_purpose="phone")
    )
    email: Mapped[str | None] = mapped_column(
        Encrypted("member.email", index_column="email_bidx", index_purpose="email")
    )
    name: Mapped[str | None] = mapped_column(
        Encrypted("member.name", index_column="name_bidx", index_purpose="name", folded=True)
    )
    birthday: Mapped[dt.date | None] = mapped_column(EncryptedDate("member.birthday"))
    phone_bidx: Mapped[str | None] = mapped_column(String(64), unique=True)
    email_bidx: Mapped[str | None] = mapped_column(String(64), unique=True)
    name_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    gender: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(64))
    home_store_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"), index=True)
    # Copy of the home store's path (or HQ's) so scope filters need no join.
    org_path: Mapped[str] = mapped_column(String(255), index=True)
    join_channel: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")
    tier_code: Mapped[str] = mapped_column(String(64))
    tier_since: Mapped[dt.datetime]
    tier_expires_at: Mapped[dt.datetime | None]
    tier_periods_below: Mapped[int] = mapped_column(Integer, default=0)
    tier_evaluated_period: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(index=True)
    updated_at: Mapped[dt.datetime]
    # The referral code given at sign-up, kept for the referral feature (not acted on yet).
    referral_code: Mapped[str | None] = mapped_column(String(32))
    # When the member's personal data was erased (right to be forgotten; issue 13).
    erased_at: Mapped[dt.datetime | None]


def name_key(name: str) -> str:
    """How a name is compared: without surrounding or repeated spaces, case-folded."""
    return fold(name)


@event.listens_for(Member.phone, "set")
def _phone_set(target: Member, value: str | None, _old: Any, _initiator: Any) -> None:
    target.phone_bidx = blind("phone", value) if value else None


@event.listens_for(Member.email, "set")
def _email_set(target: Member, value: str | None, _old: Any, _initiator: Any) -> None:
    target.email_bidx = blind("email", value) if value else None


@event.listens_for(Member.name, "set")
def _name_set(target: Member, value: str | None, _old: Any, _initiator: Any) -> None:
    target.name_bidx = blind("name", name_key(value)) if value else None
