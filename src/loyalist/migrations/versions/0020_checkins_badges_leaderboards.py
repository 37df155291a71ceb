"""check-ins, activity points, badges, challenges and leaderboards (issue 12 items 4-7)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = loyalist.kit.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leaderboard_period",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("board", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("closed_at", UTC, nullable=False),
        sa.Column("standings", sa.JSON(), nullable=False),
        sa.Column("rewarded", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaderboard_period")),
        sa.UniqueConstraint(
            "board", "period_start", name=op.f("uq_leaderboard_period_board_period_start")
        ),
    )
    op.create_table(
        "challenge_progress",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("progress", sa.BigInteger(), nullable=False),
        sa.Column("goal", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", UTC, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_challenge_progress_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_challenge_progress")),
        sa.UniqueConstraint(
            "challenge", "member_id", name=op.f("uq_challenge_progress_challenge_member_id")
        ),
    )
    op.create_index(
        op.f("ix_challenge_progress_member_id"), "challenge_progress", ["member_id"], unique=False
    )
    op.create_table(
        "checkin",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("checked_at", UTC, nullable=False),
        sa.Column("programme_tz", sa.String(length=64), nullable=False),
        sa.Column("client_tz", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_checkin_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin")),
        sa.UniqueConstraint("member_id", "local_day", name=op.f("uq_checkin_member_id_local_day")),
    )
    op.create_table(
        "habit_fact",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("counter", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", UTC, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_habit_fact_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_habit_fact")),
        sa.UniqueConstraint(
            "event_id", "counter", "label", name=op.f("uq_habit_fact_event_id_counter_label")
        ),
    )
    op.create_index(
        "ix_habit_fact_member_counter",
        "habit_fact",
        ["member_id", "counter", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "leaderboard_score",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("board", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("reached_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_leaderboard_score_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaderboard_score")),
        sa.UniqueConstraint(
            "board",
            "period_start",
            "member_id",
            name=op.f("uq_leaderboard_score_board_period_start_member_id"),
        ),
    )
    op.create_index(
        "ix_leaderboard_score_rank",
        "leaderboard_score",
        ["board", "period_start", "score"],
        unique=False,
    )
    op.create_table(
        "member_badge",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("badge", sa.String(length=64), nullable=False),
        sa.Column("awarded_at", UTC, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_member_badge_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_badge")),
        sa.UniqueConstraint("member_id", "badge", name=op.f("uq_member_badge_member_id_badge")),
    )
    op.create_table(
        "habit_activity",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("activity", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("capped", sa.String(length=16), nullable=True),
        sa.Column("entry_id", BIGINT_PK, nullable=True),
        sa.Column("occurred_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["ledger_entry.id"], name=op.f("fk_habit_activity_entry_id_ledger_entry")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name=op.f("fk_habit_activity_member_id_member")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_habit_activity")),
        sa.UniqueConstraint(
            "member_id", "activity", "ref", name=op.f("uq_habit_activity_member_id_activity_ref")
        ),
    )


def downgrade() -> None:
    op.drop_table("habit_activity")
    op.drop_table("member_badge")
    op.drop_index("ix_leaderboard_score_rank", table_name="leaderboard_score")
    op.drop_table("leaderboard_score")
    op.drop_index("ix_habit_fact_member_counter", table_name="habit_fact")
    op.drop_table("habit_fact")
    op.drop_table("checkin")
    op.drop_index(op.f("ix_challenge_progress_member_id"), table_name="challenge_progress")
    op.drop_table("challenge_progress")
    op.drop_table("leaderboard_period")
