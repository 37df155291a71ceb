"""Programme economics (issue 15 item 4): the matching and the holdout comparison recover a
known effect within their 95 % intervals on simulations where selection biases the naive
comparison; cost, rates and ROI by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from loyalist.analytics.economics import (
    HOLDOUT,
    MATCHING,
    ProgrammeCost,
    difference_of_means,
    exact_matching,
    holdout_effect,
    member_effect,
)
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import LoadReport, Transactions

TRUE_EFFECT = 40.0


def _tx(rows: list[tuple[int, dt.datetime, float, bool]]) -> Transactions:
    frame = pl.DataFrame(
        rows,
        schema={
            "customer_id": pl.Int64,
            "occurred_at": pl.Datetime("us"),
            "amount": pl.Float64,
            "is_member": pl.Boolean,
        },
        orient="row",
    )
    return Transactions(frame=frame, report=LoadReport(source="sim", rows_read=len(rows)))


def _population(seed: int, n: int = 3000) -> tuple[Transactions, dict[int, bool]]:
    """Customers of 4 pre-period levels (1..4 orders of ¥50 before 1 March): the higher the
    level, the likelier a member and the more they spend afterwards (selection). Members
    spend TRUE_EFFECT more in March; a random 10 % (the holdout) got no programme."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, dt.datetime, float, bool]] = []
    holdout: dict[int, bool] = {}
    for cid in range(1, n + 1):
        level = int(rng.integers(1, 5))
        member = bool(rng.random() < 0.1 + 0.2 * level)
        held = bool(rng.random() < 0.1)
        holdout[cid] = held
        for k in range(level):
            rows.append((cid, dt.datetime(2026, 2, 1 + 6 * k, 12), 50.0, member))
        spend = 60.0 * level + rng.normal(0, 30) + (TRUE_EFFECT if not held else 0.0)
        rows.append((cid, dt.datetime(2026, 3, 15, 12), max(spend, 1.0), member))
    return _tx(rows), holdout


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matching_recovers_the_true_effect_within_its_interval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 4000
    level = rng.integers(1, 6, n)
    member = rng.random(n) < 0.05 + 0.18 * level
    y = 100.0 * level + rng.normal(0, 40, n) + TRUE_EFFECT * member
    e = exact_matching([str(v) for v in level], member.tolist(), y.tolist())
    assert e.method == MATCHING and e.cells == 5 and e.treated_unmatched == 0
    assert e.ci_low <= TRUE_EFFECT <= e.ci_high
    assert e.naive > e.ci_high  # the unadjusted difference is biased upwards by selection
    assert e.se < 5.0


def test_member_effect_on_transactions_matches_pre_period_rfm_cells() -> None:
    tx, _ = _population(7)
    # every customer outside the holdout gets the effect, members or not: the true member
    # effect is 0 — but the naive member/non-member gap is large (members buy more anyway)
    e = member_effect(tx, dt.date(2026, 2, 28), dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert e.ci_low <= 0.0 <= e.ci_high
    assert e.naive > 20.0
    assert e.treated + e.treated_unmatched == int(
        tx.frame.group_by("customer_id").agg(pl.col("is_member").max())["is_member"].sum()
    )


def test_holdout_effect_recovers_the_true_effect_within_its_interval() -> None:
    tx, holdout = _population(11)
    e = holdout_effect(tx, holdout, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert e.method == HOLDOUT
    assert e.ci_low <= TRUE_EFFECT <= e.ci_high
    assert e.controls == sum(holdout.values()) and e.treated == len(holdout) - e.controls


def test_difference_of_means_by_hand() -> None:
    e = difference_of_means([1.0, 3.0], [0.0, 0.0, 3.0])
    assert e.estimate == 1.0
    assert e.se == pytest.approx(math.sqrt(2.0 / 2 + 3.0 / 3))
    assert (e.ci_low, e.ci_high) == pytest.approx((1 - 1.959964 * e.se, 1 + 1.959964 * e.se))
    with pytest.raises(InputError):
        difference_of_means([1.0], [2.0, 3.0])


def test_matching_leaves_out_members_without_a_comparable_non_member() -> None:
    e = exact_matching(["a", "a", "a", "b"], [True, False, False, True], [10.0, 4.0, 6.0, 99.0])
    assert (e.estimate, e.treated, e.controls, e.treated_unmatched, e.cells) == (5.0, 1, 2, 1, 1)
    with pytest.raises(InputError):
        exact_matching(["a"], [True], [1.0])


def test_cost_rates_and_roi_by_hand() -> None:
    c = ProgrammeCost(
        points_earned=10_000,
        points_redeemed=6_000,
        points_expired=1_000,
        value_minor_per_100_points=100,
        coupons_minor=2_000,
        compensation_minor=500,
    )
    assert (c.redemption_rate, c.breakage_rate) == (0.6, 0.1)
    assert (c.points_cost_minor, c.cost_minor) == (6_000, 8_500)
    assert c.roi(17_000) == 1.0
    assert c.roi(17_000, margin=0.5) == 0.0
    assert math.isnan(ProgrammeCost(0, 0, 0, 100).roi(5.0))


@pytest.mark.parametrize(("lang", "title"), [("en", "Programme effect"), ("zh", "会员效果")])
def test_the_report_states_the_method_and_the_interval(lang: str, title: str) -> None:
    from loyalist.analytics.report import ReportOptions, build_report

    tx, _ = _population(5, n=400)
    html = build_report(
        tx, ReportOptions(lang=lang, as_of=dt.date(2026, 3, 31), kpi_days=31, clusters=False)
    )
    section = html.split("data-section='effect'")[1].split("</section>")[0]
    assert title in section
    assert ("Exact matching on RFM cells" if lang == "en" else "RFM 分组精确匹配") in section
