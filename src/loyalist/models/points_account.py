from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class PointsAccount(Base):
    """A points pool: the balance cache, and the row every points write locks first.

    Every member owns exactly one account (``owner_member_id``, created when they enrol);
    other members may be attached to it (:class:`PointsAccountMember`), which makes it a
    shared account (a household's pool). Entries and lots belong to an account; each entry
    also keeps the member who caused it.

    available = sum(entry.delta_available) = sum(open available lots) - debt
    pending   = sum(entry.delta_pending)   = sum(open pending lots)
    """

    __tablename__ = "points_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), unique=True)
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debt: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    # The head of the account's hash chain: its last entry's sequence number and hash.
    chain_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    chain_head: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
