"""administration and redemption fulfilment

Redemption codes, expiry and collection; reward stock top-ups and the collection window;
the API key's personal-data permission; closed stores; the referral code given at sign-up.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 11:00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalist.kit.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same alphabet as loyalist.reward.domain.CODE_ALPHABET (kept here so the migration
# does not change when the code does).
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def _code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


def upgrade() -> None:
    dt = loyalist.kit.db.UTCDateTime(timezone=True)
    with op.batch_alter_table("redemption", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("expires_at", dt, nullable=True))
        batch_op.add_column(sa.Column("collected_at", dt, nullable=True))
        batch_op.add_column(sa.Column("collected_by", sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_redemption_code"), ["code"])
    with op.batch_alter_table("reward", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stock_added", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("collect_within_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("personal_data", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("org_unit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", dt, nullable=True))
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("referral_code", sa.String(length=32), nullable=True))
    # Every existing redemption gets a code too (they never expire: no rule applied then).
    conn = op.get_bind()
    ids = [row[0] for row in conn.execute(sa.text("SELECT id FROM redemption ORDER BY id"))]
    for rid in ids:
        conn.execute(
            sa.text("UPDATE redemption SET code = :c WHERE id = :i"), {"c": _code(), "i": rid}
        )


def downgrade() -> None:
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_column("referral_code")
    with op.batch_alter_table("org_unit", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_column("personal_data")
    with op.batch_alter_table("reward", schema=None) as batch_op:
        batch_op.drop_column("collect_within_days")
        batch_op.drop_column("stock_added")
    with op.batch_alter_table("redemption", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_redemption_code"), type_="unique")
        batch_op.drop_column("collected_by")
        batch_op.drop_column("collected_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("code")
