from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class CouponTemplate(Base):
    """What a coupon gives and when (see loyalist.coupon.domain); counters for its limits."""

    __tablename__ = "coupon_template"
    __table_args__ = (
        CheckConstraint(
            "budget_minor IS NULL OR spent_minor <= budget_minor", name="within_budget"
        ),
        CheckConstraint("limit_total IS NULL OR uses <= limit_total", name="within_limit"),
        CheckConstraint("spent_minor >= 0", name="spent_positive"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str | None] = mapped_column(String(128))
    # The template's rules as validated (loyalist.coupon.schemas.TemplateRules).
    rules: Mapped[dict[str, Any]]
    active: Mapped[bool] = mapped_column(default=True)
    # Counters kept by conditional updates (never read-then-write).
    uses: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
    limit_total: Mapped[int | None] = mapped_column(BigInteger)
    budget_minor: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
