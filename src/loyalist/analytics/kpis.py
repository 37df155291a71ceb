"""Programme KPIs over a period, for all customers, a segment, or members vs non-members.

Definitions (``period`` = [start, end], both days included; a purchase day is a calendar
day on which the customer ordered):

active_customers      customers with at least one order in the period
new_customers         active customers whose first order ever is in the period
orders, revenue       orders placed and money paid in the period
repurchase_rate       share of active customers with two or more purchase days in the period
purchase_frequency    orders per active customer
average_order_value   revenue / orders
arpu                  revenue per active customer
churn_rate            share of the customers active in the previous period of the same
                      length who placed no order in this period
retention_rate        1 - churn_rate
top_10pct_revenue_share, top_20pct_revenue_share
                      share of the period's revenue paid by the 10% (20%) of active
                      customers who spent most (rounded up to whole customers)
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection
from dataclasses import dataclass

import polars as pl

from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions
from loyalist.analytics.summary import DateLike, first_date, last_date, to_date

KPI_NAMES: tuple[str, ...] = (
    "active_customers",
    "new_customers",
    "orders",
    "revenue",
    "repurchase_rate",
    "purchase_frequency",
    "average_order_value",
    "arpu",
    "churn_rate",
    "retention_rate",
    "top_10pct_revenue_share",
    "top_20pct_revenue_share",
)


@dataclass(frozen=True)
class KPIReport:
    start: dt.date
    end: dt.date
    overall: dict[str, float]
    members: dict[str, float] | None = None
    non_members: dict[str, float] | None = None
    segment: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "segment": self.segment,
            "overall": self.overall,
        }
        if self.members is not None:
            out["members"] = self.members
            out["non_members"] = self.non_members
        return out


def _bounds(d0: dt.date, d1: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.combine(d0, dt.time()), dt.datetime.combine(
        d1 + dt.timedelta(days=1), dt.time()
    )


def _compute(frame: pl.DataFrame, start: dt.date, end: dt.date) -> dict[str, float]:
    lo, hi = _bounds(start, end)
    length = (end - start).days + 1
    prev_lo, prev_hi = _bounds(start - dt.timedelta(days=length), start - dt.timedelta(days=1))
    cur = frame.filter((pl.col("occurred_at") >= lo) & (pl.col("occurred_at") < hi))
    prev_ids = frame.filter((pl.col("occurred_at") >= prev_lo) & (pl.col("occurred_at") < prev_hi))[
        "customer_id"
    ].unique()
    firsts = frame.group_by("customer_id").agg(pl.col("occurred_at").min().alias("first"))
    per = cur.group_by("customer_id").agg(
        pl.len().alias("orders"),
        pl.col("amount").sum().alias("revenue"),
        pl.col("occurred_at").dt.date().n_unique().alias("days"),
    )
    active = per.height
    orders = int(per["orders"].sum()) if active else 0
    revenue = float(per["revenue"].sum()) if active else 0.0
    new = per.join(firsts, on="customer_id").filter(pl.col("first") >= lo).height if active else 0
    repeaters = per.filter(pl.col("days") >= 2).height
    n_prev = prev_ids.len()
    retained = int(prev_ids.is_in(per["customer_id"].implode()).sum()) if n_prev else 0

    def share(frac: float) -> float:
        if not active or revenue <= 0:
            return math.nan
        k = max(1, math.ceil(active * frac))
        top = per["revenue"].sort(descending=True).head(k).sum()
        return float(top) / revenue

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    churn = ratio(n_prev - retained, n_prev)
    return {
        "active_customers": float(active),
        "new_customers": float(new),
        "orders": float(orders),
        "revenue": revenue,
        "repurchase_rate": ratio(repeaters, active),
        "purchase_frequency": ratio(orders, active),
        "average_order_value": ratio(revenue, orders),
        "arpu": ratio(revenue, active),
        "churn_rate": churn,
        "retention_rate": 1.0 - churn if not math.isnan(churn) else math.nan,
        "top_10pct_revenue_share": share(0.10),
        "top_20pct_revenue_share": share(0.20),
    }


def compute_kpis(
    tx: Transactions,
    start: DateLike | None = None,
    end: DateLike | None = None,
    *,
    customers: Collection[str] | None = None,
    segment_name: str | None = None,
) -> KPIReport:
    """KPIs for [start, end] (default: the last 30 days of data).

    ``customers`` restricts everything to those customer ids (e.g. an RFM segment, named in
    ``segment_name`` for the report).  When the data carry a member flag, the same KPIs are
    computed for members and non-members separately.
    """
    e = to_date(end, "end") if end else last_date(tx)
    s = to_date(start, "start") if start else e - dt.timedelta(days=29)
    if s > e:
        raise InputError("KPI period start is after its end")
    if s < first_date(tx) and e < first_date(tx):
        raise InputError("the KPI period ends before the first transaction")
    frame = tx.frame
    if customers is not None:
        frame = frame.filter(pl.col("customer_id").is_in(pl.Series(list(customers))))
    overall = _compute(frame, s, e)
    members = non_members = None
    if "is_member" in frame.columns:
        members = _compute(frame.filter(pl.col("is_member")), s, e)
        non_members = _compute(frame.filter(~pl.col("is_member")), s, e)
    return KPIReport(
        start=s,
        end=e,
        overall=overall,
        members=members,
        non_members=non_members,
        segment=segment_name,
    )
