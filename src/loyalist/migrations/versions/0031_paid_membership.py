"""paid membership: ``member_pass``, one row per purchase (term) of a pass

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "member_pass",
        sa.Column("id", _ID, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("pass_code", sa.String(length=64), nullable=False),
        sa.Column("purchase_key", sa.String(length=191), nullable=False),
        sa.Column("order_id", _ID, nullable=True),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("programme_version", sa.Integer(), nullable=False),
        sa.Column("renewal", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("starts_at", _TIME, nullable=False),
        sa.Column("ends_at", _TIME, nullable=False),
        sa.Column("purchased_at", _TIME, nullable=False),
        sa.Column("refundable_until", _TIME, nullable=False),
        sa.Column("refunded_at", _TIME, nullable=True),
        sa.Column("expiring_sent_at", _TIME, nullable=True),
        sa.Column("expired_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_member_pass_member_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_member_pass_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_pass")),
        sa.UniqueConstraint("purchase_key", name=op.f("uq_member_pass_purchase_key")),
    )
    op.create_index(
        "ix_member_pass_member_ends", "member_pass", ["member_id", "ends_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_member_pass_member_ends", table_name="member_pass")
    op.drop_table("member_pass")
