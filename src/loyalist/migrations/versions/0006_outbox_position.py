"""outbox_event.position: the stream order, given after commit

Event ids are handed out when an event is written; a transaction that commits late can
make an event with a lower id visible after a reader has moved its cursor past a higher
one, and the reader would never see it (PostgreSQL). Readers now page by ``position``,
which is given to events only once they are visible, one assigner at a time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-06-10 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox_event", sa.Column("position", sa.BigInteger(), nullable=True))
    op.execute("UPDATE outbox_event SET position = id")
    op.create_index(op.f("ix_outbox_event_position"), "outbox_event", ["position"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_event_position"), table_name="outbox_event")
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.drop_column("position")
