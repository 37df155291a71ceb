"""import speed, second pass (reserved placeholder: filled in by the branch that builds it)

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 00:45:00
"""

from collections.abc import Sequence

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
