"""identity merge and duplicate candidates (issue 13 item 2)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "member_merge",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("survivor_id", sa.Integer(), nullable=False),
        sa.Column("merged_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("undo_until", UTC, nullable=False),
        sa.Column("undone_at", UTC, nullable=True),
        sa.Column("undone_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["survivor_id"], ["member.id"], name=op.f("fk_member_merge_survivor_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["merged_id"], ["member.id"], name=op.f("fk_member_merge_merged_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_merge")),
    )
    op.create_index(
        op.f("ix_member_merge_survivor_id"), "member_merge", ["survivor_id"], unique=False
    )
    op.create_index(
        "ix_member_merge_merged_id_status", "member_merge", ["merged_id", "status"], unique=False
    )
    op.create_table(
        "duplicate_candidate",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("member_a_id", sa.Integer(), nullable=False),
        sa.Column("member_b_id", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("decided_at", UTC, nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_a_id"], ["member.id"], name=op.f("fk_duplicate_candidate_member_a_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["member_b_id"], ["member.id"], name=op.f("fk_duplicate_candidate_member_b_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_candidate")),
        sa.UniqueConstraint(
            "member_a_id",
            "member_b_id",
            name=op.f("uq_duplicate_candidate_member_a_id_member_b_id"),
        ),
    )
    op.create_index(
        op.f("ix_duplicate_candidate_member_b_id"),
        "duplicate_candidate",
        ["member_b_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_duplicate_candidate_status"), "duplicate_candidate", ["status"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_duplicate_candidate_status"), table_name="duplicate_candidate")
    op.drop_index(op.f("ix_duplicate_candidate_member_b_id"), table_name="duplicate_candidate")
    op.drop_table("duplicate_candidate")
    op.drop_index("ix_member_merge_merged_id_status", table_name="member_merge")
    op.drop_index(op.f("ix_member_merge_survivor_id"), table_name="member_merge")
    op.drop_table("member_merge")
