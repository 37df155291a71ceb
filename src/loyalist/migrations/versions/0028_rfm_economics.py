"""rfm economics: member_rfm, each member's nightly RFM scores, segment and P(alive)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "member_rfm",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("recency_days", sa.Integer(), nullable=False),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary_minor", sa.BigInteger(), nullable=False),
        sa.Column("r_score", sa.SmallInteger(), nullable=False),
        sa.Column("f_score", sa.SmallInteger(), nullable=False),
        sa.Column("m_score", sa.SmallInteger(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("computed_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_member_rfm_member_id_member")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_rfm")),
    )
    op.create_index(op.f("ix_member_rfm_score"), "member_rfm", ["score"], unique=False)
    op.create_index(op.f("ix_member_rfm_segment"), "member_rfm", ["segment"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_member_rfm_segment"), table_name="member_rfm")
    op.drop_index(op.f("ix_member_rfm_score"), table_name="member_rfm")
    op.drop_table("member_rfm")
