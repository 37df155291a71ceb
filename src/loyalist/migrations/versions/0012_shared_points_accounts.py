"""shared points accounts: the account gets its own id, members belong to accounts

``points_account`` was keyed by member; it becomes a pool with its own ``id`` and an
``owner_member_id`` (every member owns exactly one account). ``points_account_member``
says which account each member draws on (one active row per member; rows of members who
left stay as history) and whether they may spend from it. Ledger entries and lots gain
``account_id``; their ``member_id`` stays the member who caused them.

Existing data: each member's account keeps its balances and gets ``id = member_id`` (so
every existing entry and lot maps to ``account_id = member_id``); a member without an
account gets an empty one. The id sequence then continues after the largest id.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = loyalist.kit.db.UTCDateTime(timezone=True)
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _is_pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    # 1. points_account: copy aside, recreate with its own id, copy back (id = member id).
    op.execute(
        "CREATE TABLE points_account_0012 AS SELECT member_id, available, pending, debt, "
        "lifetime_earned, updated_at FROM points_account"
    )
    op.drop_table("points_account")
    op.create_table(
        "points_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_member_id", sa.Integer(), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_earned", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_member_id"],
            ["member.id"],
            name=op.f("fk_points_account_owner_member_id_member"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_account")),
        sa.UniqueConstraint("owner_member_id", name=op.f("uq_points_account_owner_member_id")),
    )
    op.execute(
        "INSERT INTO points_account (id, owner_member_id, available, pending, debt, "
        "lifetime_earned, created_at, updated_at) "
        "SELECT o.member_id, o.member_id, o.available, o.pending, o.debt, o.lifetime_earned, "
        "m.created_at, o.updated_at FROM points_account_0012 o JOIN member m ON m.id = o.member_id"
    )
    op.execute(
        "INSERT INTO points_account (id, owner_member_id, available, pending, debt, "
        "lifetime_earned, created_at, updated_at) "
        "SELECT m.id, m.id, 0, 0, 0, 0, m.created_at, m.updated_at FROM member m "
        "WHERE NOT EXISTS (SELECT 1 FROM points_account_0012 o WHERE o.member_id = m.id)"
    )
    op.drop_table("points_account_0012")
    if _is_pg():
        op.execute(
            "SELECT setval(pg_get_serial_sequence('points_account', 'id'), "
            "COALESCE((SELECT MAX(id) FROM points_account), 0) + 1, false)"
        )

    # 2. Memberships: every member draws on their own account, as its owner.
    op.create_table(
        "points_account_member",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("can_spend", sa.Boolean(), nullable=False),
        sa.Column("joined_at", UTC_DT, nullable=False),
        sa.Column("left_at", UTC_DT, nullable=True),
        sa.Column("added_by", sa.String(length=128), nullable=True),
        sa.Column("removed_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["points_account.id"],
            name=op.f("fk_points_account_member_account_id_points_account"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_points_account_member_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_account_member")),
    )
    with op.batch_alter_table("points_account_member", schema=None) as batch_op:
        batch_op.create_index(
            "ix_points_account_member_account_id", ["account_id", "left_at"], unique=False
        )
        batch_op.create_index(
            "ux_points_account_member_active",
            ["member_id"],
            unique=True,
            sqlite_where=sa.text("left_at IS NULL"),
            postgresql_where=sa.text("left_at IS NULL"),
        )
    op.execute(
        "INSERT INTO points_account_member (account_id, member_id, role, can_spend, joined_at) "
        "SELECT id, owner_member_id, 'owner', "
        + ("true" if _is_pg() else "1")
        + ", created_at FROM points_account"
    )

    # 3. Entries and lots belong to an account (account id = member id for existing rows).
    for table in ("ledger_entry", "points_lot"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET account_id = member_id")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_account_id_points_account"),
                "points_account",
                ["account_id"],
                ["id"],
            )
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_entry_account_id_id", ["account_id", "id"], unique=False)
    with op.batch_alter_table("points_lot", schema=None) as batch_op:
        batch_op.drop_index("ix_points_lot_member_status_expires")
        batch_op.create_index(
            "ix_points_lot_account_status_expires",
            ["account_id", "status", "expires_at"],
            unique=False,
        )


def downgrade() -> None:
    # Only possible while no member is attached to another member's account.
    with op.batch_alter_table("points_lot", schema=None) as batch_op:
        batch_op.drop_index("ix_points_lot_account_status_expires")
        batch_op.create_index(
            "ix_points_lot_member_status_expires",
            ["member_id", "status", "expires_at"],
            unique=False,
        )
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entry_account_id_id")
    for table in ("ledger_entry", "points_lot"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_account_id_points_account"), type_="foreignkey"
            )
            batch_op.drop_column("account_id")
    op.drop_table("points_account_member")
    op.execute(
        "CREATE TABLE points_account_0012 AS SELECT owner_member_id, available, pending, debt, "
        "lifetime_earned, updated_at FROM points_account"
    )
    op.drop_table("points_account")
    op.create_table(
        "points_account",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_earned", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_points_account_member_id_member")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_points_account")),
    )
    op.execute(
        "INSERT INTO points_account (member_id, available, pending, debt, lifetime_earned, "
        "updated_at) SELECT owner_member_id, available, pending, debt, lifetime_earned, "
        "updated_at FROM points_account_0012"
    )
    op.drop_table("points_account_0012")
