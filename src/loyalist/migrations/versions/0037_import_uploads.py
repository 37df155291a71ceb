"""import uploads and options: the programme version an order import earns under

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-07 00:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: each order earns under the programme version in force at its date
    with op.batch_alter_table("import_batch") as batch:
        batch.add_column(sa.Column("programme_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("import_batch") as batch:
        batch.drop_column("programme_version")
