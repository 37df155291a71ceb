"""recommendations: the nightly job's stored lists (issue 14 item 6)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recommendation",
        sa.Column("id", _ID, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("because", sa.String(length=64), nullable=True),
        sa.Column("computed_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_recommendation_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation")),
    )
    op.create_index(
        "ix_recommendation_member_id_kind_rank",
        "recommendation",
        ["member_id", "kind", "rank"],
        unique=False,
    )
    op.create_index(
        "ix_recommendation_scope_kind_rank",
        "recommendation",
        ["scope", "kind", "rank"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_recommendation_scope_kind_rank", table_name="recommendation")
    op.drop_index("ix_recommendation_member_id_kind_rank", table_name="recommendation")
    op.drop_table("recommendation")
