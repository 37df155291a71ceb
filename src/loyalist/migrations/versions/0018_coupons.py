"""coupons: templates, batches, codes, per-member use, redemptions, guess throttling

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade() -> None:
    dt = loyalist.kit.db.UTCDateTime(timezone=True)
    op.create_table(
        "coupon_template",
        _id(),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_en", sa.String(length=128), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("uses", sa.BigInteger(), nullable=False),
        sa.Column("spent_minor", sa.BigInteger(), nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.Column("limit_total", sa.BigInteger(), nullable=True),
        sa.Column("budget_minor", sa.BigInteger(), nullable=True),
        sa.Column("created_at", dt, nullable=False),
        sa.Column("updated_at", dt, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_template")),
        sa.UniqueConstraint("code", name=op.f("uq_coupon_template_code")),
        # The database itself keeps the budget and the total limit (defence in depth).
        sa.CheckConstraint(
            "budget_minor IS NULL OR spent_minor <= budget_minor",
            name=op.f("ck_coupon_template_within_budget"),
        ),
        sa.CheckConstraint(
            "limit_total IS NULL OR uses <= limit_total",
            name=op.f("ck_coupon_template_within_limit"),
        ),
        sa.CheckConstraint("spent_minor >= 0", name=op.f("ck_coupon_template_spent_positive")),
    )
    op.create_table(
        "coupon_batch",
        _id(),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("alphabet", sa.String(length=64), nullable=False),
        sa.Column("requested", sa.BigInteger(), nullable=False),
        sa.Column("generated", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=191), nullable=False),
        sa.Column("created_at", dt, nullable=False),
        sa.Column("finished_at", dt, nullable=True),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["coupon_template.id"],
            name=op.f("fk_coupon_batch_template_id_coupon_template"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_batch")),
        sa.UniqueConstraint("external_id", name=op.f("uq_coupon_batch_external_id")),
    )
    op.create_index(op.f("ix_coupon_batch_template_id"), "coupon_batch", ["template_id"])
    op.create_table(
        "coupon_code",
        _id(),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("issue_key", sa.String(length=191), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("uses", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", dt, nullable=True),
        sa.Column("expires_at", dt, nullable=True),
        sa.Column("voided_at", dt, nullable=True),
        sa.Column("created_at", dt, nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["coupon_template.id"],
            name=op.f("fk_coupon_code_template_id_coupon_template"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["coupon_batch.id"], name=op.f("fk_coupon_code_batch_id_coupon_batch")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_coupon_code_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_code")),
        sa.UniqueConstraint("code", name=op.f("uq_coupon_code_code")),
        sa.UniqueConstraint("issue_key", name=op.f("uq_coupon_code_issue_key")),
        sa.CheckConstraint("uses >= 0", name=op.f("ck_coupon_code_uses_positive")),
    )
    op.create_index(op.f("ix_coupon_code_template_id"), "coupon_code", ["template_id"])
    op.create_index(op.f("ix_coupon_code_batch_id"), "coupon_code", ["batch_id"])
    op.create_index(
        "ix_coupon_code_member_id_template_id", "coupon_code", ["member_id", "template_id"]
    )
    op.create_table(
        "coupon_member_use",
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("uses", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["coupon_template.id"],
            name=op.f("fk_coupon_member_use_template_id_coupon_template"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_coupon_member_use_member_id_member")
        ),
        sa.PrimaryKeyConstraint("template_id", "member_id", name=op.f("pk_coupon_member_use")),
        sa.CheckConstraint("uses >= 0", name=op.f("ck_coupon_member_use_uses_positive")),
    )
    op.create_table(
        "coupon_redemption",
        _id(),
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("order_store_id", sa.Integer(), nullable=False),
        sa.Column("order_external_id", sa.String(length=128), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False),
        sa.Column("line_discounts", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("redeemed_at", dt, nullable=False),
        sa.Column("restored_at", dt, nullable=True),
        sa.ForeignKeyConstraint(
            ["code_id"], ["coupon_code.id"], name=op.f("fk_coupon_redemption_code_id_coupon_code")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["coupon_template.id"],
            name=op.f("fk_coupon_redemption_template_id_coupon_template"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_coupon_redemption_member_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["order_store_id"],
            ["org_unit.id"],
            name=op.f("fk_coupon_redemption_order_store_id_org_unit"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_redemption")),
    )
    op.create_index(op.f("ix_coupon_redemption_code_id"), "coupon_redemption", ["code_id"])
    op.create_index(op.f("ix_coupon_redemption_member_id"), "coupon_redemption", ["member_id"])
    op.create_index(
        "ix_coupon_redemption_order", "coupon_redemption", ["order_store_id", "order_external_id"]
    )
    op.create_table(
        "coupon_guess",
        sa.Column("subject", sa.String(length=191), nullable=False),
        sa.Column("window_start", dt, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "window_start", name=op.f("pk_coupon_guess")),
    )


def downgrade() -> None:
    op.drop_table("coupon_guess")
    op.drop_index("ix_coupon_redemption_order", table_name="coupon_redemption")
    op.drop_index(op.f("ix_coupon_redemption_member_id"), table_name="coupon_redemption")
    op.drop_index(op.f("ix_coupon_redemption_code_id"), table_name="coupon_redemption")
    op.drop_table("coupon_redemption")
    op.drop_table("coupon_member_use")
    op.drop_index("ix_coupon_code_member_id_template_id", table_name="coupon_code")
    op.drop_index(op.f("ix_coupon_code_batch_id"), table_name="coupon_code")
    op.drop_index(op.f("ix_coupon_code_template_id"), table_name="coupon_code")
    op.drop_table("coupon_code")
    op.drop_index(op.f("ix_coupon_batch_template_id"), table_name="coupon_batch")
    op.drop_table("coupon_batch")
    op.drop_table("coupon_template")
