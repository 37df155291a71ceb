"""orders, chains and approval

- api_key.approval_free_limit: points an API key may adjust without a second person.
- adjustment_request.cause (threshold | daily_budget | key_limit); points and ledger entry
  id 64-bit.
- adjustment_budget_use: points of manual adjustment each staff user applied per local day.
- orders: external id unique per store (chains: stores reuse receipt numbers), coupon and
  points money, the paid amount that counts toward tiers (qualifying, refunded share).
- order_return.points_expired: points of the order that had expired when it was returned.
- tier_change.metric_value 64-bit.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as b:
        b.add_column(sa.Column("approval_free_limit", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("adjustment_request", schema=None) as b:
        b.add_column(
            sa.Column("cause", sa.String(length=16), nullable=False, server_default="threshold")
        )
    if _pg():  # SQLite integers are 64-bit already
        op.alter_column("adjustment_request", "points", type_=sa.BigInteger())
        op.alter_column("adjustment_request", "ledger_entry_id", type_=sa.BigInteger())
        op.alter_column("tier_change", "metric_value", type_=sa.BigInteger())

    op.create_table(
        "adjustment_budget_use",
        sa.Column("principal", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("principal", "day", name=op.f("pk_adjustment_budget_use")),
    )

    with op.batch_alter_table("orders", schema=None) as b:
        b.add_column(sa.Column("coupon_minor", sa.BigInteger(), nullable=False, server_default="0"))
        b.add_column(
            sa.Column("points_paid_minor", sa.BigInteger(), nullable=False, server_default="0")
        )
        b.add_column(
            sa.Column("qualifying_minor", sa.BigInteger(), nullable=False, server_default="0")
        )
        b.add_column(
            sa.Column(
                "qualifying_refunded_minor", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
        b.drop_constraint("uq_orders_external_id", type_="unique")
        b.create_unique_constraint("uq_orders_store_id_external_id", ["store_id", "external_id"])
    # Orders recorded before this revision counted their whole paid amount toward tiers.
    op.execute(
        "UPDATE orders SET qualifying_minor = amount_paid_minor, "
        "qualifying_refunded_minor = refunded_minor"
    )

    with op.batch_alter_table("order_return", schema=None) as b:
        b.add_column(
            sa.Column("points_expired", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("order_return", schema=None) as b:
        b.drop_column("points_expired")
    with op.batch_alter_table("orders", schema=None) as b:
        b.drop_constraint("uq_orders_store_id_external_id", type_="unique")
        b.create_unique_constraint("uq_orders_external_id", ["external_id"])
        b.drop_column("qualifying_refunded_minor")
        b.drop_column("qualifying_minor")
        b.drop_column("points_paid_minor")
        b.drop_column("coupon_minor")
    op.drop_table("adjustment_budget_use")
    if _pg():
        op.alter_column("tier_change", "metric_value", type_=sa.Integer())
        op.alter_column("adjustment_request", "ledger_entry_id", type_=sa.Integer())
        op.alter_column("adjustment_request", "points", type_=sa.Integer())
    with op.batch_alter_table("adjustment_request", schema=None) as b:
        b.drop_column("cause")
    with op.batch_alter_table("api_key", schema=None) as b:
        b.drop_column("approval_free_limit")
