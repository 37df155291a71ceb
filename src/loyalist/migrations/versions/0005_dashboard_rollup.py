"""dashboard rollup: daily facts, fold watermarks, an index for active members

The console's dashboard sums orders and ledger entries per programme-local day and org
path from ``dashboard_daily`` (folded up to a watermark per source table) plus the rows
above the watermark; ``ix_orders_occurred_at_member_id_org_path`` makes the active-member
count an index-only scan of the period.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("member_orders", sa.BigInteger(), nullable=False),
        sa.Column("sales_minor", sa.BigInteger(), nullable=False),
        sa.Column("member_sales_minor", sa.BigInteger(), nullable=False),
        sa.Column("points_earned", sa.BigInteger(), nullable=False),
        sa.Column("points_activated", sa.BigInteger(), nullable=False),
        sa.Column("points_redeemed", sa.BigInteger(), nullable=False),
        sa.Column("points_expired", sa.BigInteger(), nullable=False),
        sa.Column("points_adjusted_in", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "org_path", name=op.f("pk_dashboard_daily")),
    )
    fold = op.create_table(
        "dashboard_fold",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("seen_id", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_dashboard_fold")),
    )
    op.bulk_insert(
        fold,
        [
            {"source": s, "watermark": 0, "seen_id": 0, "seen_at": None, "timezone": None}
            for s in ("orders", "ledger")
        ],
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_occurred_at_member_id_org_path",
            ["occurred_at", "member_id", "org_path"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_occurred_at_member_id_org_path")
    op.drop_table("dashboard_fold")
    op.drop_table("dashboard_daily")
