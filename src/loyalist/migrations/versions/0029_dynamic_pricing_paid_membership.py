"""dynamic reward pricing: quotes, and the price a redemption paid

``reward_quote`` keeps each price quoted to a member (unit points, base, explanation, valid
until); ``redemption`` gains ``quote_id`` (the quote it paid) and ``pricing`` (base, ratio,
rules applied and reason of its unit price; null for a fixed-price reward).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reward_quote",
        sa.Column("id", _ID, nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("base_points", sa.BigInteger(), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("programme_version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("valid_until", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_reward_quote_member_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["reward.id"], name=op.f("fk_reward_quote_reward_id_reward")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_quote")),
    )
    op.create_index(
        "ix_reward_quote_member_reward", "reward_quote", ["member_id", "reward_id"], unique=False
    )
    with op.batch_alter_table("redemption", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quote_id", _ID, nullable=True))
        batch_op.add_column(sa.Column("pricing", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_redemption_quote_id_reward_quote"),
            "reward_quote",
            ["quote_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("redemption", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_redemption_quote_id_reward_quote"), type_="foreignkey"
        )
        batch_op.drop_column("pricing")
        batch_op.drop_column("quote_id")
    op.drop_index("ix_reward_quote_member_reward", table_name="reward_quote")
    op.drop_table("reward_quote")
