from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class ApiKey(Base):
    """An integration's key. Only a SHA-256 of the secret is kept; the prefix identifies it."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    access: Mapped[str] = mapped_column(String(16))  # read | read_write
    # Points this key may adjust at once without a second person (None: the approval
    # threshold applies).
    approval_free_limit: Mapped[int | None] = mapped_column(BigInteger)
    # Sees personal data (phone, e-mail, birthday, openid, card number) unmasked. Keys made
    # before this column existed keep full access.
    personal_data: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
