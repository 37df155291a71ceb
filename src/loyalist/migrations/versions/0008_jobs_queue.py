"""durable job queue: the job table (claim by state and run_at, leases, dedupe key)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("run_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_job_dedupe_key")),
    )
    op.create_index("ix_job_state_run_at", "job", ["state", "run_at"], unique=False)
    op.create_index("ix_job_state_lease_until", "job", ["state", "lease_until"], unique=False)
    op.create_index("ix_job_kind_state", "job", ["kind", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_kind_state", table_name="job")
    op.drop_index("ix_job_state_lease_until", table_name="job")
    op.drop_index("ix_job_state_run_at", table_name="job")
    op.drop_table("job")
