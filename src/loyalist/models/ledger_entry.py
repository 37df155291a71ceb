from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class LedgerEntry(Base):
    """One append-only movement of an account's points, who caused it and why it happened."""

    __tablename__ = "ledger_entry"
    __table_args__ = (
        Index("ix_ledger_entry_member_id_id", "member_id", "id"),
        Index("ix_ledger_entry_account_id_id", "account_id", "id"),
        Index("ix_ledger_entry_account_id_chain_seq", "account_id", "chain_seq"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("points_account.id"))
    # The member who caused the movement (on a shared account: which of its members).
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    kind: Mapped[str] = mapped_column(String(16))
    delta_available: Mapped[int] = mapped_column(BigInteger, default=0)
    delta_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    delta_debt: Mapped[int] = mapped_column(BigInteger, default=0)
    # The cause: a source document and/or an actor.
    source_type: Mapped[str | None] = mapped_column(String(32))
    source_id: Mapped[str | None] = mapped_column(String(128))
    actor: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(500))
    corrects_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entry.id"))
    programme_version: Mapped[int | None]
    details: Mapped[dict[str, Any] | None]
    # "A source document credits once per rule": e.g. "order:42:earn". Unique.
    dedupe_key: Mapped[str | None] = mapped_column(String(191), unique=True)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]
    # Tamper evidence (issue 13): the entry's place in its account's hash chain (1, 2, …),
    # the hash of the entry before it, and SHA-256 over its content and that hash.
    chain_seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    entry_hash: Mapped[str | None] = mapped_column(String(64))
