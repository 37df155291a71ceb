"""redemption entry index: the console names the reward behind each ledger entry it shows
(a household pool's entries include other members' redemptions)

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 02:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_redemption_entry_id", "redemption", ["entry_id"])


def downgrade() -> None:
    op.drop_index("ix_redemption_entry_id", table_name="redemption")
