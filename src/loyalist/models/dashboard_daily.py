from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class DashboardDaily(Base):
    """Additive dashboard facts per programme-local day and org path (a store's path for
    orders, the member's home path for points), folded from orders and ledger entries up to
    the watermarks in :class:`DashboardFold`. Rows above a watermark are summed live."""

    __tablename__ = "dashboard_daily"

    day: Mapped[date] = mapped_column(primary_key=True)
    org_path: Mapped[str] = mapped_column(String(255), primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger, default=0)
    member_orders: Mapped[int] = mapped_column(BigInteger, default=0)
    sales_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    member_sales_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    points_activated: Mapped[int] = mapped_column(BigInteger, default=0)
    points_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    points_expired: Mapped[int] = mapped_column(BigInteger, default=0)
    points_adjusted_in: Mapped[int] = mapped_column(BigInteger, default=0)
    # Every entry's deltas, whatever its kind: summed over all days, the balances (liability).
    available_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_delta: Mapped[int] = mapped_column(BigInteger, default=0)
