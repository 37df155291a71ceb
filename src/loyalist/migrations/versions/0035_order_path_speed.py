"""order path speed (reserved placeholder: filled in by the branch that builds it)

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-06 21:05:00
"""

from collections.abc import Sequence

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
