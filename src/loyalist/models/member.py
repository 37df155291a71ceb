from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

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
    phone: Mapped[str | None] = mapped_column(String(32), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    birthday: Mapped[dt.date | None]
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
