"""trust fixes: an index for the pruning of event receipts (consumer, position)

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06 21:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_event_receipt_consumer_position", "event_receipt", ["consumer", "position"])


def downgrade() -> None:
    op.drop_index("ix_event_receipt_consumer_position", table_name="event_receipt")
