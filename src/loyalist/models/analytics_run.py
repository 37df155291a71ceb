from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class AnalyticsRun(Base):
    """One computation of the console's analytics section (RFM segments and their movement,
    cohort retention, CLV and P(alive), the valuable members at risk) over the orders a
    scope sees, done step by step by background jobs; ``result`` fills in as steps finish."""

    __tablename__ = "analytics_run"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_path: Mapped[str] = mapped_column(String(255), index=True)  # the scope it covers
    as_of: Mapped[date]  # programme-local day the figures are taken at (inclusive)
    compare_from: Mapped[date]  # the earlier day for segment movement
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    step: Mapped[int]  # steps finished (0 .. steps)
    steps: Mapped[int]
    result: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(String(2000))
    requested_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
