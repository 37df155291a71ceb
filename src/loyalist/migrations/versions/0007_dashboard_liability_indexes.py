"""dashboard: balances in the rollup, covering indexes for members and tier moves

``dashboard_daily`` gains every ledger entry's deltas (summed over all days: the points
liability of a scope); the rollup is emptied so the next fold rebuilds it with them.
``ix_member_org_path_tier_code_created_at`` makes member counts and the tier distribution
an index-only scan (``text_pattern_ops`` on PostgreSQL: a scope is a path prefix, and LIKE
uses a plain index only under the C collation); ``ix_tier_change_occurred_at`` finds a
period's tier moves.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _restart_rollup() -> None:
    op.execute("DELETE FROM dashboard_daily")
    op.execute(
        "UPDATE dashboard_fold SET watermark = 0, seen_id = 0, seen_at = NULL, timezone = NULL"
    )


def upgrade() -> None:
    _restart_rollup()
    with op.batch_alter_table("dashboard_daily", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("available_delta", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("pending_delta", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("dashboard_daily", schema=None) as batch_op:
        batch_op.alter_column("available_delta", server_default=None)
        batch_op.alter_column("pending_delta", server_default=None)
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.create_index(
            "ix_member_org_path_tier_code_created_at",
            ["org_path", "tier_code", "created_at", "id"],
            unique=False,
            postgresql_ops={"org_path": "text_pattern_ops"},
        )
    with op.batch_alter_table("tier_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tier_change_occurred_at"), ["occurred_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tier_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tier_change_occurred_at"))
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_index("ix_member_org_path_tier_code_created_at")
    _restart_rollup()
    with op.batch_alter_table("dashboard_daily", schema=None) as batch_op:
        batch_op.drop_column("pending_delta")
        batch_op.drop_column("available_delta")
