"""The pass ROI section (issue 15): pass holders against non-holders matched on their RFM
cell before the period recovers a known extra spend and extra retention within their 95 %
intervals where the naive comparison is biased (frequent customers buy the pass more
often); the pass's ROI by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from loyalist.analytics.economics import MATCHING, PassEconomics, pass_effect
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import LoadReport, Transactions

EXTRA_SPEND = 30.0  # yuan a holder spends more in March
STAY_LIFT = 0.15  # holders are this much likelier to order in March


def _population(seed: int, n: int = 4000) -> tuple[Transactions, dict[int, bool]]:
    """Customers of 4 pre-period levels (1..4 orders of ¥50 in February); the higher the
    level, the likelier a holder, the likelier to come back in March and the more they
    spend then (selection); holding adds EXTRA_SPEND and STAY_LIFT."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, dt.datetime, float]] = []
    holders: dict[int, bool] = {}
    for cid in range(1, n + 1):
        level = int(rng.integers(1, 5))
        holder = bool(rng.random() < 0.05 + 0.1 * level)
        holders[cid] = holder
        for k in range(level):
            rows.append((str(cid), dt.datetime(2026, 2, 1 + 6 * k, 12), 50.0))
        stays = rng.random() < 0.3 + 0.1 * level + (STAY_LIFT if holder else 0.0)
        if stays:
            spend = 60.0 * level + rng.normal(0, 20) + (EXTRA_SPEND if holder else 0.0)
            rows.append((str(cid), dt.datetime(2026, 3, 15, 12), max(spend, 1.0)))
    frame = pl.DataFrame(
        rows,
        schema={"customer_id": pl.String, "occurred_at": pl.Datetime("us"), "amount": pl.Float64},
        orient="row",
    )
    return Transactions(frame=frame, report=LoadReport(source="sim", rows_read=len(rows))), holders


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matched_holders_recover_the_true_retention_lift(seed: int) -> None:
    tx, holders = _population(seed)
    e = pass_effect(tx, holders, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert e.spend.method == MATCHING and e.spend.cells == 4
    assert e.spend.treated == sum(holders.values()) and e.spend.treated_unmatched == 0
    assert e.spend.controls == len(holders) - e.spend.treated
    r = e.retention
    assert r is not None and r.treated == e.spend.treated
    assert r.ci_low <= STAY_LIFT <= r.ci_high
    assert r.naive > r.ci_high  # frequent customers hold the pass: the raw gap is too big
    # spend per holder (0 when not back): lift × level spend + P(back) × EXTRA_SPEND —
    # larger than EXTRA_SPEND alone, and the naive gap larger still
    assert e.spend.ci_low > 0 and e.spend.naive > e.spend.estimate


def test_no_holder_is_refused() -> None:
    tx, holders = _population(4, n=200)
    with pytest.raises(InputError):
        pass_effect(tx, dict.fromkeys(holders, False), dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    with pytest.raises(InputError):
        pass_effect(tx, holders, dt.date(2026, 3, 31), dt.date(2026, 3, 1))


def test_pass_roi_by_hand() -> None:
    # fees ¥990 + extra spend ¥500 − points 12,345 at ¥1 per 100 (¥123.45) over ¥123.45
    m = PassEconomics(
        fees_minor=99_000,
        points=12_345,
        value_minor_per_100_points=100,
        incremental_revenue_minor=50_000.0,
    )
    assert m.points_cost_minor == 12_345
    assert m.roi == pytest.approx((99_000 + 50_000 - 12_345) / 12_345)
    assert math.isnan(PassEconomics(9900, 0, 100, 0.0).roi)


def test_a_lone_holder_in_a_cell_borrows_the_non_holders_variance() -> None:
    from loyalist.analytics.economics import exact_matching

    # one holder (spent 10) against non-holders 0, 2, 4 (variance 4): SE² = 4/1 + 4/3
    e = exact_matching(["a"] * 4, [True, False, False, False], [10.0, 0.0, 2.0, 4.0])
    assert e.estimate == pytest.approx(8.0)
    assert e.se == pytest.approx(math.sqrt(4.0 + 4.0 / 3))
