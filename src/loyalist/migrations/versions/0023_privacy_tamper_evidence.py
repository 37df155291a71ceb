"""privacy and tamper evidence: the ledger's hash chain

``ledger_entry`` gains ``chain_seq`` (1, 2, … per account), ``prev_hash`` and
``entry_hash`` (SHA-256 over the entry's content and the previous hash, see
``ledger.domain.entry_hash``); ``points_account`` keeps the chain's head (``chain_seq``,
``chain_head``). Existing entries are chained in id order per account.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db
from loyalist.ledger.domain import CHAINED_FIELDS, GENESIS, entry_hash

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = loyalist.kit.db.UTCDateTime(timezone=True)

_entries = sa.table(
    "ledger_entry",
    sa.column("id", sa.BigInteger()),
    sa.column("account_id", sa.Integer()),
    sa.column("member_id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("delta_available", sa.BigInteger()),
    sa.column("delta_pending", sa.BigInteger()),
    sa.column("delta_debt", sa.BigInteger()),
    sa.column("source_type", sa.String()),
    sa.column("source_id", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("corrects_entry_id", sa.BigInteger()),
    sa.column("programme_version", sa.Integer()),
    sa.column("details", sa.JSON()),
    sa.column("dedupe_key", sa.String()),
    sa.column("occurred_at", UTC_DT),
    sa.column("created_at", UTC_DT),
    sa.column("chain_seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("entry_hash", sa.String()),
)
_accounts = sa.table(
    "points_account",
    sa.column("id", sa.Integer()),
    sa.column("chain_seq", sa.BigInteger()),
    sa.column("chain_head", sa.String()),
)


def _backfill_chain() -> None:
    """Chain every existing entry, per account in id order; set each account's head."""
    conn = op.get_bind()
    cols = [_entries.c[name] for name in CHAINED_FIELDS]
    rows = conn.execute(
        sa.select(_entries.c.id, *cols).order_by(_entries.c.account_id, _entries.c.id)
    )
    heads: dict[int, tuple[int, str]] = {}
    updates: list[dict[str, Any]] = []
    set_entry = (
        sa.update(_entries)
        .where(_entries.c.id == sa.bindparam("_id"))
        .values(
            chain_seq=sa.bindparam("_seq"),
            prev_hash=sa.bindparam("_prev"),
            entry_hash=sa.bindparam("_hash"),
        )
    )
    for row in rows.all():
        fields = dict(zip(CHAINED_FIELDS, row[1:], strict=True))
        account_id = int(fields["account_id"])
        seq, prev = heads.get(account_id, (0, GENESIS))
        seq += 1
        digest = entry_hash(prev, seq, fields)
        heads[account_id] = (seq, digest)
        updates.append({"_id": row[0], "_seq": seq, "_prev": prev, "_hash": digest})
        if len(updates) >= 5000:
            conn.execute(set_entry, updates)
            updates = []
    if updates:
        conn.execute(set_entry, updates)
    if heads:
        conn.execute(
            sa.update(_accounts)
            .where(_accounts.c.id == sa.bindparam("_id"))
            .values(chain_seq=sa.bindparam("_seq"), chain_head=sa.bindparam("_head")),
            [{"_id": a, "_seq": s, "_head": h} for a, (s, h) in heads.items()],
        )


def upgrade() -> None:
    # --- tamper-evident ledger (issue 13 item 7) ---
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_ledger_entry_account_id_chain_seq", ["account_id", "chain_seq"], unique=False
        )
    with op.batch_alter_table("points_account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chain_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("chain_head", sa.String(length=64), nullable=True))
    _backfill_chain()


def downgrade() -> None:
    with op.batch_alter_table("points_account", schema=None) as batch_op:
        batch_op.drop_column("chain_head")
        batch_op.drop_column("chain_seq")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entry_account_id_chain_seq")
        batch_op.drop_column("entry_hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("chain_seq")
