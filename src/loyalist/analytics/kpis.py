"""Programme KPIs over a period, for all customers, a segment, or members vs non-members.

Definitions (``period`` = [start, end], both days included, calendar days in the analysis
time zone; a purchase day is a calendar day on which the customer ordered; the previous
period is the period of the same length that ends the day before ``start``):

active_customers      customers with at least one order in the period
new_customers         active customers whose first order in the data is in the period
orders, revenue       orders placed and money paid (net of refunds) in the period
revenue_share         the group's revenue / the revenue of every order in the period
repurchase_rate       share of active customers with two or more purchase days in the period
purchase_frequency    orders of active customers per active customer
average_order_value   revenue / orders
arpu                  revenue of active customers per active customer
churn_rate            share of the customers active in the previous period who placed no
                      order in this period (nan when nobody was active then)
retention_rate        1 - churn_rate
top_10pct_revenue_share, top_20pct_revenue_share
                      share of the active customers' revenue paid by the 10% (20%) of them
                      who spent most (rounded up to whole customers; ties by customer id)

Anonymous orders (no customer id, e.g. a checkout without a member) count in ``orders``,
``revenue``, ``revenue_share`` and ``average_order_value`` only: they cannot be linked to a
person, so every customer-based KPI counts identified customers.  Members vs non-members
split the orders by the order's member flag; a group with anonymous orders only has no
customer-based KPIs (nan).

Sums of money are exact: a customer's revenue adds their orders in row order, and every total
over customers or orders is the correctly rounded sum (:func:`math.fsum`), which does not
depend on the order of the terms — so the Spark engine (``--engine spark``), which adds in
partitions, gives the very same figures.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import polars as pl

from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions
from loyalist.analytics.summary import DateLike, to_date

KPI_NAMES: tuple[str, ...] = (
    "active_customers",
    "new_customers",
    "orders",
    "revenue",
    "revenue_share",
    "repurchase_rate",
    "purchase_frequency",
    "average_order_value",
    "arpu",
    "churn_rate",
    "retention_rate",
    "top_10pct_revenue_share",
    "top_20pct_revenue_share",
)

#: Order attributes KPIs can be restricted to.
FILTER_COLUMNS = frozenset({"store", "channel", "tier"})

#: KPIs that count identified customers (nan for a group of anonymous orders only).
CUSTOMER_KPIS = frozenset(KPI_NAMES) - {
    "orders",
    "revenue",
    "revenue_share",
    "average_order_value",
}


@dataclass(frozen=True)
class KPIReport:
    start: dt.date
    end: dt.date
    overall: dict[str, float]
    members: dict[str, float] | None = None
    non_members: dict[str, float] | None = None
    segment: str | None = None
    anonymous_orders: int = 0
    where: Mapping[str, str] | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "segment": self.segment,
            "where": dict(self.where) if self.where else None,
            "anonymous_orders": self.anonymous_orders,
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


def _within(frame: pl.DataFrame, lo: dt.datetime, hi: dt.datetime) -> pl.DataFrame:
    return frame.filter((pl.col("occurred_at") >= lo) & (pl.col("occurred_at") < hi))


def exact_sum(values: pl.Series) -> float:
    """The correctly rounded sum of ``values`` (independent of their order)."""
    return math.fsum(values.cast(pl.Float64).to_numpy())


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


@dataclass(frozen=True)
class GroupFigures:
    """The aggregated figures of one group (all customers, members, ...) for a KPI period,
    from which :func:`assemble_kpis` builds its KPIs; each engine computes them its own way.

    ``customer_revenue`` and ``anonymous_revenue`` are exact sums; ``identified`` says
    whether the group has any identified order at all (only consulted when it has
    anonymous orders in the period).
    """

    active: int  # customers with an order in the period
    new: int  # of them, those without an order before the period
    customer_orders: int  # orders of the active customers in the period
    customer_revenue: float  # their revenue
    repeaters: int  # active customers with two or more purchase days in the period
    previous_active: int  # customers with an order in the previous period
    retained: int  # of them, those active in the period
    anonymous_orders: int = 0  # orders without a customer id in the period
    anonymous_revenue: float = 0.0  # their revenue
    identified: bool = True


def top_count(active: int, share: float) -> int:
    """How many customers make the top ``share`` of ``active`` (rounded up, at least one)."""
    return max(1, math.ceil(active * share))


def assemble_kpis(
    figures: GroupFigures, total_revenue: float, top_revenue: Callable[[int], float]
) -> dict[str, float]:
    """The KPIs of a group from its :class:`GroupFigures`; ``total_revenue`` is the revenue
    of every order in the period (for ``revenue_share``) and ``top_revenue(k)`` the exact
    revenue of the group's k customers who spent most (ties by customer id).  Pure: both
    engines call it, so they build the very same figures from the same aggregates."""
    f = figures
    active = f.active

    def top_share(share: float) -> float:
        if not active or f.customer_revenue <= 0:
            return math.nan
        return top_revenue(top_count(active, share)) / f.customer_revenue

    orders = f.customer_orders + f.anonymous_orders
    revenue = f.customer_revenue + f.anonymous_revenue
    churn = _ratio(f.previous_active - f.retained, f.previous_active)
    out = {
        "active_customers": float(active),
        "new_customers": float(f.new),
        "orders": float(orders),
        "revenue": revenue,
        "revenue_share": _ratio(revenue, total_revenue),
        "repurchase_rate": _ratio(f.repeaters, active),
        "purchase_frequency": _ratio(f.customer_orders, active),
        "average_order_value": _ratio(revenue, orders),
        "arpu": _ratio(f.customer_revenue, active),
        "churn_rate": churn,
        "retention_rate": 1.0 - churn if not math.isnan(churn) else math.nan,
        "top_10pct_revenue_share": top_share(0.10),
        "top_20pct_revenue_share": top_share(0.20),
    }
    if f.anonymous_orders and not f.identified:
        out.update(dict.fromkeys(CUSTOMER_KPIS, math.nan))
    return out


def _compute(
    frame: pl.DataFrame,
    anonymous: pl.DataFrame | None,
    start: dt.date,
    end: dt.date,
    total_revenue: float,
) -> dict[str, float]:
    """KPIs of identified orders ``frame`` plus anonymous orders ``anonymous``."""
    lo, hi = _bounds(start, end)
    length = (end - start).days + 1
    prev_lo, prev_hi = _bounds(start - dt.timedelta(days=length), start - dt.timedelta(days=1))
    cur = _within(frame, lo, hi)
    prev_ids = _within(frame, prev_lo, prev_hi)["customer_id"].unique()
    before = frame.filter(pl.col("occurred_at") < lo)["customer_id"].unique()
    per = cur.group_by("customer_id").agg(
        pl.len().alias("orders"),
        pl.col("amount").cum_sum().last().alias("revenue"),
        pl.col("occurred_at").dt.date().n_unique().alias("days"),
    )
    active = per.height
    anon_cur = _within(anonymous, lo, hi) if anonymous is not None else None
    anon_orders = anon_cur.height if anon_cur is not None else 0
    n_prev = prev_ids.len()
    ranked = per.sort(["revenue", "customer_id"], descending=[True, False])["revenue"]
    figures = GroupFigures(
        active=active,
        new=int((~per["customer_id"].is_in(before.implode())).sum()) if active else 0,
        customer_orders=int(per["orders"].sum()) if active else 0,
        customer_revenue=exact_sum(per["revenue"]) if active else 0.0,
        repeaters=per.filter(pl.col("days") >= 2).height,
        previous_active=n_prev,
        retained=int(prev_ids.is_in(per["customer_id"].implode()).sum()) if n_prev else 0,
        anonymous_orders=anon_orders,
        anonymous_revenue=(
            exact_sum(anon_cur["amount"]) if anon_orders and anon_cur is not None else 0.0
        ),
        identified=frame.height > 0,
    )
    return assemble_kpis(figures, total_revenue, lambda k: exact_sum(ranked.head(k)))


def _day(value: object) -> dt.date:
    assert isinstance(value, dt.datetime)
    return value.date()


def compute_kpis(
    tx: Transactions,
    start: DateLike | None = None,
    end: DateLike | None = None,
    *,
    customers: Collection[str] | None = None,
    segment_name: str | None = None,
    where: Mapping[str, str] | None = None,
) -> KPIReport:
    """KPIs for [start, end] (default: the 30 days ending on the last day of data).

    ``customers`` restricts everything to those customer ids (e.g. an RFM segment, named in
    ``segment_name`` for the report; anonymous orders are then left out).  When the data
    carry a member flag, the same KPIs are computed for members and non-members separately.

    ``where`` keeps only the orders whose ``store``, ``channel`` or ``tier`` has the given
    value (e.g. ``{"store": "sh1"}``): every KPI, including churn, then describes that
    store, channel or tier.
    """
    frame = tx.frame
    anonymous = tx.anonymous if tx.anonymous is not None and tx.anonymous.height else None

    def stamps(f: pl.DataFrame, a: pl.DataFrame | None) -> pl.DataFrame:
        parts = [f.select("occurred_at", "amount")]
        if a is not None:
            parts.append(a.select("occurred_at", "amount"))
        return pl.concat(parts)

    everything = stamps(frame, anonymous)
    if everything.height == 0:
        raise InputError("no transactions")
    e = to_date(end, "end") if end else _day(everything["occurred_at"].max())
    s = to_date(start, "start") if start else e - dt.timedelta(days=29)
    if s > e:
        raise InputError("KPI period start is after its end")
    if e < _day(everything["occurred_at"].min()):
        raise InputError("the KPI period ends before the first transaction")
    for column, value in (where or {}).items():
        if column not in FILTER_COLUMNS:
            raise InputError(
                f"cannot filter on {column!r}: use one of {', '.join(sorted(FILTER_COLUMNS))}"
            )
        if column not in frame.columns:
            raise InputError(f"the data have no {column!r} column to filter on")
        frame = frame.filter(pl.col(column) == value)
        if anonymous is not None and column in anonymous.columns:
            anonymous = anonymous.filter(pl.col(column) == value)
        if frame.height == 0 and (anonymous is None or anonymous.height == 0):
            raise InputError(f"no orders with {column} = {value!r}")
        everything = stamps(frame, anonymous)
    lo, hi = _bounds(s, e)
    total_revenue = exact_sum(_within(everything, lo, hi)["amount"])
    if customers is not None:
        frame = frame.filter(
            pl.col("customer_id").is_in(pl.Series(list(customers), dtype=pl.Utf8).implode())
        )
        anonymous = None
    overall = _compute(frame, anonymous, s, e, total_revenue)
    members = non_members = None
    if tx.has_member_flag:
        members = _compute(frame.filter(pl.col("is_member")), None, s, e, total_revenue)
        non_members = _compute(frame.filter(~pl.col("is_member")), anonymous, s, e, total_revenue)
    n_anon = _within(anonymous, lo, hi).height if anonymous is not None else 0
    return KPIReport(
        start=s,
        end=e,
        overall=overall,
        members=members,
        non_members=non_members,
        segment=segment_name,
        anonymous_orders=n_anon,
        where=dict(where) if where else None,
    )
