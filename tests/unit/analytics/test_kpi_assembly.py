"""kpis.assemble_kpis: the one function both engines build their KPIs with."""

from __future__ import annotations

import math

from loyalist.analytics.kpis import CUSTOMER_KPIS, KPI_NAMES, GroupFigures, assemble_kpis, top_count


def test_kpis_from_figures() -> None:
    figures = GroupFigures(
        active=10,
        new=4,
        customer_orders=25,
        customer_revenue=1000.0,
        repeaters=6,
        previous_active=8,
        retained=6,
        anonymous_orders=5,
        anonymous_revenue=200.0,
    )
    asked: list[int] = []

    def top(k: int) -> float:
        asked.append(k)
        return {1: 300.0, 2: 450.0}[k]

    out = assemble_kpis(figures, 2400.0, top)
    assert tuple(out) == KPI_NAMES
    assert out == {
        "active_customers": 10.0,
        "new_customers": 4.0,
        "orders": 30.0,
        "revenue": 1200.0,
        "revenue_share": 0.5,
        "repurchase_rate": 0.6,
        "purchase_frequency": 2.5,
        "average_order_value": 40.0,
        "arpu": 100.0,
        "churn_rate": 0.25,
        "retention_rate": 0.75,
        "top_10pct_revenue_share": 0.3,
        "top_20pct_revenue_share": 0.45,
    }
    assert asked == [1, 2]


def test_top_count_rounds_up_to_whole_customers() -> None:
    assert [top_count(n, 0.10) for n in (1, 9, 10, 11, 20, 21)] == [1, 1, 1, 2, 2, 3]
    assert top_count(0, 0.2) == 1


def test_empty_and_anonymous_only_groups() -> None:
    def never(k: int) -> float:
        raise AssertionError("no top customers to ask for")

    nobody = GroupFigures(0, 0, 0, 0.0, 0, 0, 0)
    out = assemble_kpis(nobody, 0.0, never)
    assert out["active_customers"] == 0.0 and out["orders"] == 0.0
    for name in ("revenue_share", "repurchase_rate", "arpu", "churn_rate", "retention_rate"):
        assert math.isnan(out[name]), name
    assert math.isnan(out["top_10pct_revenue_share"])
    # anonymous orders only: the customer-based KPIs are nan, the order KPIs are figures
    anon = GroupFigures(
        0, 0, 0, 0.0, 0, 0, 0, anonymous_orders=3, anonymous_revenue=30.0, identified=False
    )
    out = assemble_kpis(anon, 60.0, never)
    assert (out["orders"], out["revenue"], out["revenue_share"]) == (3.0, 30.0, 0.5)
    assert out["average_order_value"] == 10.0
    assert all(math.isnan(out[k]) for k in CUSTOMER_KPIS)
    # a group with identified orders outside the period keeps its customer KPIs (0, not nan)
    out = assemble_kpis(GroupFigures(0, 0, 0, 0.0, 0, 2, 0, 3, 30.0, True), 60.0, never)
    assert out["active_customers"] == 0.0 and out["churn_rate"] == 1.0
