"""privacy and tamper evidence: the ledger's hash chain, personal data encrypted at rest

``ledger_entry`` gains ``chain_seq`` (1, 2, … per account), ``prev_hash`` and
``entry_hash`` (SHA-256 over the entry's content and the previous hash, see
``ledger.domain.entry_hash``); ``points_account`` keeps the chain's head (``chain_seq``,
``chain_head``). Existing entries are chained in id order per account.

Personal fields (``member.phone``, ``email``, ``name``, ``birthday`` and
``member_identity.value``) become AES-GCM ciphertexts (``kit.crypto``, key from
``LOYALIST_SECRET_KEY`` / ``LOYALIST_KEYFILE``: set them before upgrading); lookups move to
keyed blind indexes (``phone_bidx``, ``email_bidx``, ``name_bidx``, ``value_bidx``) that
carry the unique constraints the clear columns had.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db
from loyalist.kit import crypto
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


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()  # as models.member.name_key


_PLAIN_MEMBER = sa.table(
    "member",
    sa.column("id", sa.Integer()),
    sa.column("phone", sa.String()),
    sa.column("email", sa.String()),
    sa.column("name", sa.String()),
    sa.column("birthday", sa.String()),
    sa.column("phone_bidx", sa.String()),
    sa.column("email_bidx", sa.String()),
    sa.column("name_bidx", sa.String()),
)
_PLAIN_IDENTITY = sa.table(
    "member_identity",
    sa.column("id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("value", sa.String()),
    sa.column("value_bidx", sa.String()),
)


def _seal(purpose: str, value: str | None) -> str | None:
    if value is None or crypto.key_id(value) is not None:
        return value
    return crypto.encrypt(purpose, value)


def _unseal(purpose: str, value: str | None) -> str | None:
    return None if value is None else crypto.decrypt(purpose, value)


def _batched(statement: Any, params: list[dict[str, Any]]) -> None:
    conn = op.get_bind()
    for i in range(0, len(params), 5000):
        conn.execute(statement, params[i : i + 5000])


def _encrypt_members() -> None:
    conn = op.get_bind()
    m = _PLAIN_MEMBER
    params = []
    for mid, phone, email, name, birthday in conn.execute(
        sa.select(m.c.id, m.c.phone, m.c.email, m.c.name, m.c.birthday)
    ):
        birthday = str(birthday)[:10] if birthday is not None else None
        params.append(
            {
                "_id": mid,
                "_phone": _seal("member.phone", phone),
                "_email": _seal("member.email", email),
                "_name": _seal("member.name", name),
                "_birthday": _seal("member.birthday", birthday),
                "_pb": crypto.blind("phone", phone) if phone else None,
                "_eb": crypto.blind("email", email) if email else None,
                "_nb": crypto.blind("name", _name_key(name)) if name else None,
            }
        )
    _batched(
        sa.update(m)
        .where(m.c.id == sa.bindparam("_id"))
        .values(
            phone=sa.bindparam("_phone"),
            email=sa.bindparam("_email"),
            name=sa.bindparam("_name"),
            birthday=sa.bindparam("_birthday"),
            phone_bidx=sa.bindparam("_pb"),
            email_bidx=sa.bindparam("_eb"),
            name_bidx=sa.bindparam("_nb"),
        ),
        params,
    )
    i = _PLAIN_IDENTITY
    params = [
        {
            "_id": iid,
            "_value": _seal("member_identity.value", value),
            "_vb": crypto.blind(kind, value),
        }
        for iid, kind, value in conn.execute(sa.select(i.c.id, i.c.kind, i.c.value))
    ]
    _batched(
        sa.update(i)
        .where(i.c.id == sa.bindparam("_id"))
        .values(value=sa.bindparam("_value"), value_bidx=sa.bindparam("_vb")),
        params,
    )


def _decrypt_members() -> None:
    conn = op.get_bind()
    m = _PLAIN_MEMBER
    params = [
        {
            "_id": mid,
            "_phone": _unseal("member.phone", phone),
            "_email": _unseal("member.email", email),
            "_name": _unseal("member.name", name),
            "_birthday": _unseal("member.birthday", birthday),
        }
        for mid, phone, email, name, birthday in conn.execute(
            sa.select(m.c.id, m.c.phone, m.c.email, m.c.name, m.c.birthday)
        )
    ]
    _batched(
        sa.update(m)
        .where(m.c.id == sa.bindparam("_id"))
        .values(
            phone=sa.bindparam("_phone"),
            email=sa.bindparam("_email"),
            name=sa.bindparam("_name"),
            birthday=sa.bindparam("_birthday"),
        ),
        params,
    )
    i = _PLAIN_IDENTITY
    params = [
        {"_id": iid, "_value": _unseal("member_identity.value", value)}
        for iid, value in conn.execute(sa.select(i.c.id, i.c.value))
    ]
    _batched(
        sa.update(i).where(i.c.id == sa.bindparam("_id")).values(value=sa.bindparam("_value")),
        params,
    )


def _upgrade_personal_data() -> None:
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_constraint("uq_member_phone", type_="unique")
        batch_op.drop_constraint("uq_member_email", type_="unique")
        for col in ("phone", "email", "name"):
            batch_op.alter_column(col, type_=sa.String(length=512), existing_nullable=True)
        batch_op.alter_column(
            "birthday",
            type_=sa.String(length=128),
            existing_type=sa.Date(),
            existing_nullable=True,
            postgresql_using="birthday::text",
        )
        batch_op.add_column(sa.Column("phone_bidx", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("email_bidx", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("name_bidx", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("erased_at", UTC_DT, nullable=True))
    with op.batch_alter_table("member_identity", schema=None) as batch_op:
        batch_op.drop_constraint("uq_member_identity_kind_value", type_="unique")
        batch_op.alter_column("value", type_=sa.String(length=512), existing_nullable=False)
        batch_op.add_column(sa.Column("value_bidx", sa.String(length=64), nullable=True))
    _encrypt_members()
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_member_phone_bidx", ["phone_bidx"])
        batch_op.create_unique_constraint("uq_member_email_bidx", ["email_bidx"])
        batch_op.create_index("ix_member_name_bidx", ["name_bidx"], unique=False)
    with op.batch_alter_table("member_identity", schema=None) as batch_op:
        batch_op.alter_column("value_bidx", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(
            "uq_member_identity_kind_value_bidx", ["kind", "value_bidx"]
        )


def _downgrade_personal_data() -> None:
    with op.batch_alter_table("member_identity", schema=None) as batch_op:
        batch_op.drop_constraint("uq_member_identity_kind_value_bidx", type_="unique")
        batch_op.drop_column("value_bidx")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_index("ix_member_name_bidx")
        batch_op.drop_constraint("uq_member_email_bidx", type_="unique")
        batch_op.drop_constraint("uq_member_phone_bidx", type_="unique")
        batch_op.drop_column("erased_at")
        batch_op.drop_column("name_bidx")
        batch_op.drop_column("email_bidx")
        batch_op.drop_column("phone_bidx")
    _decrypt_members()
    with op.batch_alter_table("member_identity", schema=None) as batch_op:
        batch_op.alter_column("value", type_=sa.String(length=254), existing_nullable=False)
        batch_op.create_unique_constraint("uq_member_identity_kind_value", ["kind", "value"])
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.alter_column("phone", type_=sa.String(length=32), existing_nullable=True)
        batch_op.alter_column("email", type_=sa.String(length=254), existing_nullable=True)
        batch_op.alter_column("name", type_=sa.String(length=128), existing_nullable=True)
        batch_op.alter_column(
            "birthday",
            type_=sa.Date(),
            existing_type=sa.String(length=128),
            existing_nullable=True,
            postgresql_using="birthday::date",
        )
        batch_op.create_unique_constraint("uq_member_phone", ["phone"])
        batch_op.create_unique_constraint("uq_member_email", ["email"])


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
    # --- personal data encrypted at rest (issue 13 item 3) ---
    _upgrade_personal_data()


def downgrade() -> None:
    _downgrade_personal_data()
    with op.batch_alter_table("points_account", schema=None) as batch_op:
        batch_op.drop_column("chain_head")
        batch_op.drop_column("chain_seq")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entry_account_id_chain_seq")
        batch_op.drop_column("entry_hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("chain_seq")
