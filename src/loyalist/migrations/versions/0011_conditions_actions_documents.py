"""action receipts, member tasks and configuration documents

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "action_receipt",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("cause", sa.String(length=191), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("member_key", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_action_receipt_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_receipt")),
        sa.UniqueConstraint("cause", "action", "member_key", name="uq_action_receipt_cause_action"),
    )
    op.create_index(
        op.f("ix_action_receipt_member_id"), "action_receipt", ["member_id"], unique=False
    )
    op.create_table(
        "member_task",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("due_at", UTC, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=191), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("closed_at", UTC, nullable=True),
        sa.Column("closed_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_member_task_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_task")),
    )
    op.create_index(op.f("ix_member_task_member_id"), "member_task", ["member_id"], unique=False)
    op.create_index(op.f("ix_member_task_org_path"), "member_task", ["org_path"], unique=False)
    op.create_table(
        "config_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_document")),
        sa.UniqueConstraint("kind", "version", name="uq_config_document_kind_version"),
    )


def downgrade() -> None:
    op.drop_table("config_document")
    op.drop_index(op.f("ix_member_task_org_path"), table_name="member_task")
    op.drop_index(op.f("ix_member_task_member_id"), table_name="member_task")
    op.drop_table("member_task")
    op.drop_index(op.f("ix_action_receipt_member_id"), table_name="action_receipt")
    op.drop_table("action_receipt")
