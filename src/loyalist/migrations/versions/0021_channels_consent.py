"""message channels, delivery status, consent ledger, frequency caps

The ``message`` table becomes every message's record (member, purpose, status, reason,
hold time, provider id, dedupe key); ``message_attempt`` keeps each hand-over to a
provider with its answer; ``consent_record`` is the consent ledger per purpose and
channel; ``message_quota`` counts marketing messages per member, channel and local
period for frequency caps; ``message_authorisation`` counts WeChat subscribe-message
authorisations.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = loyalist.kit.db.UTCDateTime(timezone=True)
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_record",
        sa.Column("id", BIG, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("text_version", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("recorded_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_record")),
    )
    with op.batch_alter_table("consent_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_record_member", ["member_id", "purpose", "channel", "id"], unique=False
        )

    op.create_table(
        "message_attempt",
        sa.Column("id", BIG, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("provider_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_attempt")),
    )
    with op.batch_alter_table("message_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_attempt_message_id"), ["message_id"], unique=False
        )

    op.create_table(
        "message_authorisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.String(length=128), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_authorisation")),
        sa.UniqueConstraint(
            "member_id",
            "template_id",
            name=op.f("uq_message_authorisation_member_id_template_id"),
        ),
    )
    op.create_table(
        "message_quota",
        sa.Column("id", BIG, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_quota")),
        sa.UniqueConstraint(
            "member_id", "channel", "period", name=op.f("uq_message_quota_member_id_channel_period")
        ),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("org_path", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column(
                "purpose", sa.String(length=16), nullable=False, server_default="transactional"
            )
        )
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="sent")
        )
        batch_op.add_column(sa.Column("reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("due_at", UTC, nullable=True))
        batch_op.add_column(sa.Column("expires_at", UTC, nullable=True))
        batch_op.add_column(sa.Column("sent_at", UTC, nullable=True))
        batch_op.add_column(sa.Column("provider_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("fallback_of", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", UTC, nullable=True))
        batch_op.create_index(
            "ix_message_member_created", ["member_id", "created_at"], unique=False
        )
        batch_op.create_unique_constraint(batch_op.f("uq_message_dedupe_key"), ["dedupe_key"])


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_message_dedupe_key"), type_="unique")
        batch_op.drop_index("ix_message_member_created")
        for column in (
            "updated_at",
            "fallback_of",
            "dedupe_key",
            "provider_id",
            "sent_at",
            "expires_at",
            "due_at",
            "attempts",
            "reason",
            "status",
            "purpose",
            "org_path",
            "member_id",
        ):
            batch_op.drop_column(column)
    op.drop_table("message_quota")
    op.drop_table("message_authorisation")
    with op.batch_alter_table("message_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_attempt_message_id"))
    op.drop_table("message_attempt")
    with op.batch_alter_table("consent_record", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_record_member")
    op.drop_table("consent_record")
