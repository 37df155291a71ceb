"""referrals (老带新), friend-assist (好友助力) and groups (拼团)

Referral codes, referrals (one per referred member, never oneself: constraints), each
side's reward once, identifier digests for abuse holds, quarterly leaders; assist
campaigns with one help per friend (never the starter) and groups with one place per
member.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("referred_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("hold_reasons", sa.JSON(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("qualify_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("qualified_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rewarded_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("clawed_back_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("referrer_id <> referred_id", name=op.f("ck_referral_not_self")),
        sa.ForeignKeyConstraint(
            ["referred_id"], ["member.id"], name=op.f("fk_referral_referred_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["referrer_id"], ["member.id"], name=op.f("fk_referral_referrer_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral")),
        sa.UniqueConstraint("referred_id", name=op.f("uq_referral_referred_id")),
    )
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_org_path"), ["org_path"], unique=False)
        batch_op.create_index(
            "ix_referral_referrer_id_status", ["referrer_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_referral_status_qualified_at", ["status", "qualified_at"], unique=False
        )

    op.create_table(
        "referral_code",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_referral_code_member_id_member")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_referral_code")),
        sa.UniqueConstraint("code", name=op.f("uq_referral_code_code")),
    )
    op.create_table(
        "referral_leader",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("qualified", sa.Integer(), nullable=False),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_referral_leader_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_leader")),
        sa.UniqueConstraint(
            "period", "member_id", name=op.f("uq_referral_leader_period_member_id")
        ),
    )
    op.create_table(
        "referral_signal",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_referral_signal_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_signal")),
        sa.UniqueConstraint(
            "member_id", "kind", "digest", name=op.f("uq_referral_signal_member_id_kind_digest")
        ),
    )
    with op.batch_alter_table("referral_signal", schema=None) as batch_op:
        batch_op.create_index("ix_referral_signal_kind_digest", ["kind", "digest"], unique=False)

    op.create_table(
        "viral_assist",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("starter_id", sa.Integer(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("needed", sa.Integer(), nullable=False),
        sa.Column("helps", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["starter_id"], ["member.id"], name=op.f("fk_viral_assist_starter_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_viral_assist")),
        sa.UniqueConstraint(
            "campaign", "starter_id", name=op.f("uq_viral_assist_campaign_starter_id")
        ),
    )
    with op.batch_alter_table("viral_assist", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_viral_assist_starter_id"), ["starter_id"], unique=False
        )

    op.create_table(
        "viral_group",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("leader_id", sa.Integer(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dissolved_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["leader_id"], ["member.id"], name=op.f("fk_viral_group_leader_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_viral_group")),
    )
    with op.batch_alter_table("viral_group", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_viral_group_leader_id"), ["leader_id"], unique=False)
        batch_op.create_index(
            "ix_viral_group_status_deadline", ["status", "deadline"], unique=False
        )

    op.create_table(
        "referral_reward",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("referral_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("clawed_back", sa.BigInteger(), nullable=False),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_referral_reward_member_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_referral_reward_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_reward")),
        sa.UniqueConstraint(
            "referral_id", "role", name=op.f("uq_referral_reward_referral_id_role")
        ),
    )
    with op.batch_alter_table("referral_reward", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referral_reward_member_id"), ["member_id"], unique=False
        )

    op.create_table(
        "viral_assist_help",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("assist_id", sa.BigInteger(), nullable=False),
        sa.Column("starter_id", sa.Integer(), nullable=False),
        sa.Column("helper_id", sa.Integer(), nullable=False),
        sa.Column("created_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "helper_id <> starter_id", name=op.f("ck_viral_assist_help_not_starter")
        ),
        sa.ForeignKeyConstraint(
            ["assist_id"],
            ["viral_assist.id"],
            name=op.f("fk_viral_assist_help_assist_id_viral_assist"),
        ),
        sa.ForeignKeyConstraint(
            ["helper_id"], ["member.id"], name=op.f("fk_viral_assist_help_helper_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["starter_id"], ["member.id"], name=op.f("fk_viral_assist_help_starter_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_viral_assist_help")),
        sa.UniqueConstraint(
            "assist_id", "helper_id", name=op.f("uq_viral_assist_help_assist_id_helper_id")
        ),
    )
    with op.batch_alter_table("viral_assist_help", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_viral_assist_help_helper_id"), ["helper_id"], unique=False
        )

    op.create_table(
        "viral_group_member",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("joined_at", loyalist.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["viral_group.id"],
            name=op.f("fk_viral_group_member_group_id_viral_group"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_viral_group_member_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_viral_group_member")),
        sa.UniqueConstraint(
            "group_id", "member_id", name=op.f("uq_viral_group_member_group_id_member_id")
        ),
    )
    with op.batch_alter_table("viral_group_member", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_viral_group_member_member_id"), ["member_id"], unique=False
        )

    with op.batch_alter_table("adjustment_request", schema=None) as batch_op:
        batch_op.alter_column(
            "points", existing_type=sa.INTEGER(), type_=sa.BigInteger(), existing_nullable=False
        )
        batch_op.alter_column(
            "ledger_entry_id",
            existing_type=sa.INTEGER(),
            type_=sa.BigInteger(),
            existing_nullable=True,
        )

    with op.batch_alter_table("tier_change", schema=None) as batch_op:
        batch_op.alter_column(
            "metric_value",
            existing_type=sa.INTEGER(),
            type_=sa.BigInteger(),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("tier_change", schema=None) as batch_op:
        batch_op.alter_column(
            "metric_value",
            existing_type=sa.BigInteger(),
            type_=sa.INTEGER(),
            existing_nullable=False,
        )

    with op.batch_alter_table("adjustment_request", schema=None) as batch_op:
        batch_op.alter_column(
            "ledger_entry_id",
            existing_type=sa.BigInteger(),
            type_=sa.INTEGER(),
            existing_nullable=True,
        )
        batch_op.alter_column(
            "points", existing_type=sa.BigInteger(), type_=sa.INTEGER(), existing_nullable=False
        )

    with op.batch_alter_table("viral_group_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_viral_group_member_member_id"))

    op.drop_table("viral_group_member")
    with op.batch_alter_table("viral_assist_help", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_viral_assist_help_helper_id"))

    op.drop_table("viral_assist_help")
    with op.batch_alter_table("referral_reward", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_reward_member_id"))

    op.drop_table("referral_reward")
    with op.batch_alter_table("viral_group", schema=None) as batch_op:
        batch_op.drop_index("ix_viral_group_status_deadline")
        batch_op.drop_index(batch_op.f("ix_viral_group_leader_id"))

    op.drop_table("viral_group")
    with op.batch_alter_table("viral_assist", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_viral_assist_starter_id"))

    op.drop_table("viral_assist")
    with op.batch_alter_table("referral_signal", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_signal_kind_digest")

    op.drop_table("referral_signal")
    op.drop_table("referral_leader")
    op.drop_table("referral_code")
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_status_qualified_at")
        batch_op.drop_index("ix_referral_referrer_id_status")
        batch_op.drop_index(batch_op.f("ix_referral_org_path"))

    op.drop_table("referral")
