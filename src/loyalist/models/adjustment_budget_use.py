from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class AdjustmentBudgetUse(Base):
    """Points of manual adjustment a staff user applied on one programme-local day."""

    __tablename__ = "adjustment_budget_use"

    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)
