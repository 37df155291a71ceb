"""households: a main member's household (its pool is their shared points account) and
the invitations into it

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = loyalist.kit.db.UTCDateTime(timezone=True)
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "household",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("owner_member_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("dissolved_at", UTC_DT, nullable=True),
        sa.Column("dissolved_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_member_id"], ["member.id"], name=op.f("fk_household_owner_member_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["points_account.id"],
            name=op.f("fk_household_account_id_points_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household")),
    )
    op.create_index(
        "ux_household_owner_active",
        "household",
        ["owner_member_id"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index("ix_household_account_id", "household", ["account_id"])
    op.create_table(
        "household_invitation",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("household_id", BIGINT_PK, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("can_spend", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("invited_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.Column("expires_at", UTC_DT, nullable=False),
        sa.Column("decided_at", UTC_DT, nullable=True),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_household_invitation_household_id_household"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_household_invitation_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_invitation")),
    )
    op.create_index(
        "ux_household_invitation_pending",
        "household_invitation",
        ["household_id", "member_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_household_invitation_member_id", "household_invitation", ["member_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_household_invitation_member_id", table_name="household_invitation")
    op.drop_index("ux_household_invitation_pending", table_name="household_invitation")
    op.drop_table("household_invitation")
    op.drop_index("ix_household_account_id", table_name="household")
    op.drop_index("ux_household_owner_active", table_name="household")
    op.drop_table("household")
