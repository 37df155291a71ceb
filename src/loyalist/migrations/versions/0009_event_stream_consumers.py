"""event stream consumers: checkpoints, receipts, failures

Each consumer of the event stream keeps its checkpoint (a stream position) in
``event_consumer``, a receipt per handled event in ``event_receipt`` (unique per consumer and
event, written with the handler's effects) and the events its handler failed on in
``event_failure`` (retried with backoff, then parked). (Events are now given their stream
position right after their transaction commits; no schema change is needed for that.)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "event_consumer",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("handled", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_consumer")),
    )
    op.create_table(
        "event_receipt",
        sa.Column("id", _ID, nullable=False),
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("handled_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_receipt")),
        sa.UniqueConstraint(
            "consumer", "event_id", name=op.f("uq_event_receipt_consumer_event_id")
        ),
    )
    op.create_table(
        "event_failure",
        sa.Column("id", _ID, nullable=False),
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("retry_at", _TS, nullable=False),
        sa.Column("parked_at", _TS, nullable=True),
        sa.Column("first_failed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_failure")),
        sa.UniqueConstraint(
            "consumer", "event_id", name=op.f("uq_event_failure_consumer_event_id")
        ),
    )
    with op.batch_alter_table("event_failure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_failure_consumer"), ["consumer"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event_failure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_failure_consumer"))
    op.drop_table("event_failure")
    op.drop_table("event_receipt")
    op.drop_table("event_consumer")
