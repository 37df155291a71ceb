"""fraud controls (风控): velocity counters, checks, the review queue, frozen members

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, loyalist.kit.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "fraud_counter",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("window", sa.String(length=4), nullable=False),
        _time("bucket"),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "scope", "subject", "kind", "window", "bucket", name=op.f("pk_fraud_counter")
        ),
    )
    op.create_index("ix_fraud_counter_bucket", "fraud_counter", ["bucket"])
    op.create_table(
        "fraud_device_member",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device", "day", "member_id", name=op.f("pk_fraud_device_member")),
    )
    op.create_table(
        "fraud_check",
        sa.Column("id", _PK, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("store_id", sa.BigInteger(), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("shadow", sa.JSON(), nullable=False),
        sa.Column("doc_version", sa.Integer(), nullable=True),
        _time("checked_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_check")),
    )
    op.create_index("ix_fraud_check_checked_at", "fraud_check", ["checked_at"])
    op.create_index(op.f("ix_fraud_check_member_id"), "fraud_check", ["member_id"])
    op.create_table(
        "fraud_review",
        sa.Column("id", _PK, nullable=False),
        sa.Column("check_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        _time("decided_at", nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_review")),
        sa.UniqueConstraint("check_id", name=op.f("uq_fraud_review_check_id")),
    )
    op.create_index("ix_fraud_review_status_id", "fraud_review", ["status", "id"])
    op.create_index(op.f("ix_fraud_review_member_id"), "fraud_review", ["member_id"])
    op.create_index(op.f("ix_fraud_review_org_path"), "fraud_review", ["org_path"])
    op.create_table(
        "member_freeze",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("frozen_by", sa.String(length=128), nullable=False),
        _time("frozen_at"),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_member_freeze_member_id_member")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_freeze")),
    )


def downgrade() -> None:
    op.drop_table("member_freeze")
    op.drop_index(op.f("ix_fraud_review_org_path"), table_name="fraud_review")
    op.drop_index(op.f("ix_fraud_review_member_id"), table_name="fraud_review")
    op.drop_index("ix_fraud_review_status_id", table_name="fraud_review")
    op.drop_table("fraud_review")
    op.drop_index(op.f("ix_fraud_check_member_id"), table_name="fraud_check")
    op.drop_index("ix_fraud_check_checked_at", table_name="fraud_check")
    op.drop_table("fraud_check")
    op.drop_table("fraud_device_member")
    op.drop_index("ix_fraud_counter_bucket", table_name="fraud_counter")
    op.drop_table("fraud_counter")
