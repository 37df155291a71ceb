from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class Reward(Base):
    """A catalogue item. Attributes follow the active programme; stock lives here only."""

    __tablename__ = "reward"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    cash_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    stock_total: Mapped[int | None]
    stock_remaining: Mapped[int | None]
    # Units added by top-ups since the programme set the stock: kept across programme
    # versions (the programme's stock plus this is the total).
    stock_added: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # A redeemed voucher can be collected for this many days (programme-local), or forever.
    collect_within_days: Mapped[int | None]
    per_member_limit: Mapped[int | None]
    min_tier: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    image_url: Mapped[str | None] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(2000), default="")
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime]
