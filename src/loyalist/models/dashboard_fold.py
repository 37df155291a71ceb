from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class DashboardFold(Base):
    """How far one source table ("orders", "ledger") is folded into ``dashboard_daily``.

    Rows with ``id <= watermark`` are folded. ``seen_id`` is the highest id observed at
    ``seen_at``: it is folded once ``seen_at`` is older than the fold margin, so a row whose
    transaction had not committed when the id was observed is never skipped.
    """

    __tablename__ = "dashboard_fold"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    watermark: Mapped[int] = mapped_column(BigInteger, default=0)
    seen_id: Mapped[int] = mapped_column(BigInteger, default=0)
    seen_at: Mapped[datetime | None]
    timezone: Mapped[str | None] = mapped_column(String(64))  # the days' time zone
