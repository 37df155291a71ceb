from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class Redemption(Base):
    __tablename__ = "redemption"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("reward.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    org_path: Mapped[str] = mapped_column(String(255), index=True)
    quantity: Mapped[int]
    points: Mapped[int] = mapped_column(BigInteger)
    cash_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # completed | cancelled
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entry.id"), index=True)
    cancel_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entry.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
    # Fulfilment: the code the member shows at the counter (unique, no look-alike
    # characters), when the voucher stops being collectable, and its one collection.
    code: Mapped[str | None] = mapped_column(String(16), unique=True)
    expires_at: Mapped[datetime | None]
    collected_at: Mapped[datetime | None]
    collected_by: Mapped[str | None] = mapped_column(String(128))
    # Dynamic pricing (issue 15, item 5): the quote it paid, if any, and how its unit price
    # was set (base, ratio, rules applied, reason); None for a fixed-price reward.
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("reward_quote.id"))
    pricing: Mapped[dict[str, Any] | None]
