"""journeys and experiments: runs, the steps they passed, pause state

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "journey_state",
        sa.Column("journey_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("changed_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("journey_key", name=op.f("pk_journey_state")),
    )
    op.create_table(
        "journey_run",
        sa.Column("id", _ID, nullable=False),
        sa.Column("journey_key", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("active_member", sa.Integer(), nullable=True),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=48), nullable=True),
        sa.Column("due_at", _TIME, nullable=True),
        sa.Column("waiting_event", sa.String(length=64), nullable=True),
        sa.Column("cause", sa.String(length=64), nullable=False),
        sa.Column("exit_reason", sa.String(length=64), nullable=True),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("entered_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_journey_run_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_run")),
        sa.UniqueConstraint("journey_key", "active_member", name="uq_journey_run_active"),
    )
    op.create_index(
        "ix_journey_run_journey_key_state", "journey_run", ["journey_key", "state"], unique=False
    )
    op.create_index(
        "ix_journey_run_member_id_state", "journey_run", ["member_id", "state"], unique=False
    )
    op.create_table(
        "journey_step",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("journey_key", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_journey_step_member_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["journey_run.id"], name=op.f("fk_journey_step_run_id_journey_run")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_step")),
        sa.UniqueConstraint("run_id", "step_id", name="uq_journey_step_run_step"),
    )
    op.create_index(
        "ix_journey_step_journey_key_step_id",
        "journey_step",
        ["journey_key", "step_id"],
        unique=False,
    )
    op.create_index(op.f("ix_journey_step_member_id"), "journey_step", ["member_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_journey_step_member_id"), table_name="journey_step")
    op.drop_index("ix_journey_step_journey_key_step_id", table_name="journey_step")
    op.drop_table("journey_step")
    op.drop_index("ix_journey_run_member_id_state", table_name="journey_run")
    op.drop_index("ix_journey_run_journey_key_state", table_name="journey_run")
    op.drop_table("journey_run")
    op.drop_table("journey_state")
