"""Programme economics (issue 15 item 4): cost, redemption and breakage rates, ROI, and the
programme's effect on spend — members against comparable non-members, and marketing against
a holdout group.

Methods
-------
* **Member vs non-member, adjusted for selection: exact matching on pre-period RFM cells.**
  Each customer's cell is their RFM code (``r_score f_score m_score``, quantile bins) at the
  end of the pre-period, or ``new`` without a purchase by then. The outcome is the money a
  customer spent in the post-period (0 when nothing). Within every cell holding both members
  and non-members the effect is the difference of the means; the estimate is the average
  effect on the treated (ATT): those differences weighted by the members in each cell.
  Its variance is Σ wᶜ² (s²ₜ/nₜ + s²꜀/n꜀) (cells are independent; in a group of one the
  other group's variance stands in for its own), and the 95 % interval is
  ± 1.96 standard errors. Members in a cell without any non-member cannot be matched and
  are left out (counted in ``treated_unmatched``). The naive (unadjusted) difference is
  reported beside it.
* **Incrementality against a holdout** (the journeys' global holdout, randomised by member
  id): difference of the mean outcomes, Welch standard error, 95 % normal interval.
* **Cost** = points redeemed at the point value + coupon value + compensation; **redemption
  rate** = redeemed ÷ earned; **breakage rate** = expired ÷ earned; **ROI** =
  (incremental revenue × gross margin − cost) ÷ cost (margin 1 unless given: revenue ROI).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions
from loyalist.analytics.rfm import customer_rfm, rfm_scores

Z95 = 1.959963984540054
MATCHING = "exact matching on pre-period RFM cells (ATT, cells weighted by members)"
HOLDOUT = "difference of means against the randomised holdout (Welch, normal 95% CI)"


@dataclass(frozen=True)
class Effect:
    method: str
    estimate: float
    se: float
    treated: int
    controls: int
    naive: float = math.nan  # the unadjusted difference of the means
    cells: int = 0  # cells used (matching)
    treated_unmatched: int = 0

    @property
    def ci_low(self) -> float:
        return self.estimate - Z95 * self.se

    @property
    def ci_high(self) -> float:
        return self.estimate + Z95 * self.se

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "estimate": self.estimate,
            "se": self.se,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "treated": self.treated,
            "controls": self.controls,
            "naive": self.naive,
            "cells": self.cells,
            "treated_unmatched": self.treated_unmatched,
        }


def exact_matching(
    cells: Sequence[str], treated: Sequence[bool], outcome: Sequence[float]
) -> Effect:
    """ATT by exact matching on ``cells`` (see the module docstring)."""
    if not (len(cells) == len(treated) == len(outcome)):
        raise InputError("cells, treated and outcome must have the same length")
    frame = pl.DataFrame(
        {"cell": list(cells), "t": list(treated), "y": [float(v) for v in outcome]},
        schema={"cell": pl.String, "t": pl.Boolean, "y": pl.Float64},
    )
    n_t = int(frame["t"].sum())
    n_c = frame.height - n_t
    if n_t == 0 or n_c == 0:
        raise InputError("need both treated and control customers")
    naive = float(frame.filter(pl.col("t"))["y"].mean()) - float(  # type: ignore[arg-type]
        frame.filter(~pl.col("t"))["y"].mean()  # type: ignore[arg-type]
    )
    g = (
        frame.group_by("cell", "t")
        .agg(pl.len().alias("n"), pl.col("y").mean().alias("mean"), pl.col("y").var().alias("var"))
        .sort("cell", "t")
    )
    by: dict[tuple[str, bool], tuple[int, float, float]] = {
        (row["cell"], row["t"]): (int(row["n"]), float(row["mean"]), float(row["var"] or 0.0))
        for row in g.iter_rows(named=True)
    }
    used = [c for c in sorted({k[0] for k in by}) if (c, True) in by and (c, False) in by]
    matched = sum(by[(c, True)][0] for c in used)
    if matched == 0:
        raise InputError("no cell holds both treated and control customers")
    est = 0.0
    var = 0.0
    controls = 0
    for c in used:
        nt, mt, vt = by[(c, True)]
        nc, mc, vc = by[(c, False)]
        w = nt / matched
        est += w * (mt - mc)
        # A group of one has no variance of its own: the other group's stands in for it.
        vt, vc = (vt if nt > 1 else vc), (vc if nc > 1 else vt)
        var += w * w * (vt / nt + vc / nc)
        controls += nc
    return Effect(
        method=MATCHING,
        estimate=est,
        se=math.sqrt(var),
        treated=matched,
        controls=controls,
        naive=naive,
        cells=len(used),
        treated_unmatched=n_t - matched,
    )


def difference_of_means(treated: Sequence[float], holdout: Sequence[float]) -> Effect:
    """Treated minus holdout mean, Welch standard error (see the module docstring)."""
    t = np.asarray(treated, dtype=np.float64)
    h = np.asarray(holdout, dtype=np.float64)
    if t.size < 2 or h.size < 2:
        raise InputError("need at least two customers in each group")
    est = float(t.mean() - h.mean())
    se = math.sqrt(float(t.var(ddof=1)) / t.size + float(h.var(ddof=1)) / h.size)
    return Effect(HOLDOUT, est, se, int(t.size), int(h.size), naive=est)


def _spend(tx: Transactions, start: dt.date, end: dt.date) -> pl.DataFrame:
    lo = dt.datetime.combine(start, dt.time())
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    return (
        tx.frame.filter(pl.col("occurred_at") >= lo, pl.col("occurred_at") < hi)
        .group_by("customer_id")
        .agg(pl.col("amount").sum().alias("y"))
    )


def member_effect(
    tx: Transactions, pre_end: dt.date, post_start: dt.date, post_end: dt.date
) -> Effect:
    """Members' extra spend in [post_start, post_end] against non-members matched on their
    RFM cell at ``pre_end`` (needs the ``is_member`` flag; a customer with any member order
    is a member)."""
    if not tx.has_member_flag:
        raise InputError("member vs non-member needs the is_member column")
    if not pre_end < post_start <= post_end:
        raise InputError("the pre-period must end before the post-period starts")
    people = tx.frame.group_by("customer_id").agg(pl.col("is_member").max().alias("t"))
    pre = customer_rfm(tx, pre_end)
    if pre.height:
        scores = rfm_scores(tx, pre_end).select("customer_id", pl.col("rfm_code").alias("cell"))
    else:
        scores = pl.DataFrame(
            schema={"customer_id": people["customer_id"].dtype, "cell": pl.String}
        )
    joined = (
        people.join(scores, on="customer_id", how="left")
        .join(_spend(tx, post_start, post_end), on="customer_id", how="left")
        .with_columns(pl.col("cell").fill_null("new"), pl.col("y").fill_null(0.0))
        .sort("customer_id")
    )
    return exact_matching(
        joined["cell"].to_list(),
        [bool(v) for v in joined["t"].to_list()],
        joined["y"].to_list(),
    )


def holdout_effect(
    tx: Transactions, holdout: Mapping[int, bool], start: dt.date, end: dt.date
) -> Effect:
    """Spend in [start, end] of customers outside the holdout minus that of the holdout
    (``holdout``: customer id → in the holdout; customers not listed are left out; a
    listed customer without an order in the period spent 0)."""
    # ids compared as text: a database's ids may be read as strings
    spend = {str(k): float(v) for k, v in _spend(tx, start, end).iter_rows()}
    t = [spend.get(str(c), 0.0) for c, h in holdout.items() if not h]
    h = [spend.get(str(c), 0.0) for c, h in holdout.items() if h]
    return difference_of_means(t, h)


@dataclass(frozen=True)
class ProgrammeCost:
    """Points and money (minor units) of a period; see the module docstring."""

    points_earned: int
    points_redeemed: int
    points_expired: int
    value_minor_per_100_points: int
    coupons_minor: int = 0
    compensation_minor: int = 0

    @property
    def redemption_rate(self) -> float:
        return self.points_redeemed / self.points_earned if self.points_earned else math.nan

    @property
    def breakage_rate(self) -> float:
        return self.points_expired / self.points_earned if self.points_earned else math.nan

    @property
    def points_cost_minor(self) -> int:
        return (self.points_redeemed * self.value_minor_per_100_points + 50) // 100

    @property
    def cost_minor(self) -> int:
        return self.points_cost_minor + self.coupons_minor + self.compensation_minor

    def roi(self, incremental_revenue_minor: float, margin: float = 1.0) -> float:
        if self.cost_minor == 0:
            return math.nan
        return (incremental_revenue_minor * margin - self.cost_minor) / self.cost_minor


# ── paid membership (issue 15: the pass ROI section) ──────────────────────────────────────
HOLDERS_MATCHING = (
    "holders against non-holders matched exactly on their RFM cell before the period "
    "(ATT, cells weighted by holders); retention = share with an order in the period among "
    "customers who had ordered before it"
)


@dataclass(frozen=True)
class PassEffect:
    """Pass holders against matched non-holders over one period: spend (yuan) and
    retention (a share, 0..1); ``retention`` is None when no returning holder matched."""

    spend: Effect
    retention: Effect | None


def pass_effect(
    tx: Transactions, holders: Mapping[int, bool], start: dt.date, end: dt.date
) -> PassEffect:
    """Holders' (``holders``: customer id → held a pass in [start, end]) extra spend in
    [start, end] and extra retention, against non-holders in the same RFM cell at the day
    before ``start`` (customers without an order by then: cell ``new``; customers not listed
    are left out; a listed customer without an order in the period spent 0)."""
    if start > end:
        raise InputError("the period must not end before it starts")
    pre_end = start - dt.timedelta(days=1)
    cell: dict[str, str] = {}
    if customer_rfm(tx, pre_end).height:
        for cid, code in rfm_scores(tx, pre_end).select("customer_id", "rfm_code").iter_rows():
            cell[str(cid)] = str(code)
    spend = {str(k): float(v) for k, v in _spend(tx, start, end).iter_rows()}
    ordered = set(spend)
    keys = [(str(c), bool(h)) for c, h in sorted(holders.items())]
    cells = [cell.get(c, "new") for c, _h in keys]
    treated = [h for _c, h in keys]
    money = exact_matching(cells, treated, [spend.get(c, 0.0) for c, _h in keys])
    back = [(cl, h, c) for cl, h, (c, _h) in zip(cells, treated, keys, strict=True) if cl != "new"]
    retention: Effect | None = None
    try:
        retention = exact_matching(
            [cl for cl, _h, _c in back],
            [h for _cl, h, _c in back],
            [1.0 if c in ordered else 0.0 for _cl, _h, c in back],
        )
    except InputError:
        retention = None
    return PassEffect(spend=money, retention=retention)


@dataclass(frozen=True)
class PassEconomics:
    """A pass's money over one period (minor units): fees of the terms sold and kept, the
    points its multiplier gave at their value, and the holders' extra spend (matched ATT ×
    matched holders). ROI = (fees + extra spend − points cost) ÷ points cost."""

    fees_minor: int
    points: int
    value_minor_per_100_points: int
    incremental_revenue_minor: float

    @property
    def points_cost_minor(self) -> int:
        return (self.points * self.value_minor_per_100_points + 50) // 100

    @property
    def roi(self) -> float:
        if self.points_cost_minor == 0:
            return math.nan
        gain = self.fees_minor + self.incremental_revenue_minor
        return (gain - self.points_cost_minor) / self.points_cost_minor
