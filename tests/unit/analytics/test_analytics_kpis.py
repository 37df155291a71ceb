"""Every KPI on hand-made data, overall, for members and non-members, for a segment, with
anonymous orders; values computed by hand from the definitions in docs/analytics.md."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from loyalist.analytics.errors import InputError
from loyalist.analytics.i18n import KPI_DEFINITIONS, KPI_LABELS
from loyalist.analytics.io import ColumnMap, Transactions, normalise
from loyalist.analytics.kpis import KPI_NAMES, compute_kpis

# customer ("" = anonymous), time, amount, member flag
ROWS = [
    ("m1", "2024-01-10 12:00", 100.0, "yes"),  # before the previous period
    ("m1", "2024-02-15 12:00", 50.0, "yes"),  # previous period
    ("m1", "2024-03-05 10:00", 200.0, "yes"),
    ("m1", "2024-03-05 18:00", 100.0, "yes"),  # same day: one purchase day
    ("m1", "2024-03-20 12:00", 60.0, "yes"),
    ("m2", "2024-02-20 12:00", 80.0, "yes"),  # active before, not now: churned
    ("m3", "2024-03-10 12:00", 40.0, "yes"),  # new
    ("n1", "2024-02-01 12:00", 30.0, "no"),
    ("n1", "2024-03-31 23:59", 90.0, "no"),  # last minute of the period
    ("n2", "2024-03-15 12:00", 10.0, "no"),
    ("n2", "2024-03-16 12:00", 10.0, "no"),
    ("m4", "2024-04-01 00:00", 500.0, "yes"),  # after the period
    ("", "2024-03-02 12:00", 25.0, "no"),  # anonymous
    ("", "2024-03-03 12:00", 15.0, "no"),  # anonymous
    ("", "2024-02-10 12:00", 99.0, "no"),  # anonymous, previous period
]

MARCH = ("2024-03-01", "2024-03-31")


@pytest.fixture
def tx() -> Transactions:
    frame = pl.DataFrame(
        ROWS, schema=["customer_id", "occurred_at", "amount", "member"], orient="row"
    )
    return normalise(frame, ColumnMap(member="member"), anonymous=True)


def test_overall_kpis_for_a_month(tx: Transactions) -> None:
    rep = compute_kpis(tx, *MARCH)
    assert (rep.start, rep.end) == (dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    assert rep.anonymous_orders == 2
    assert rep.overall == {
        "active_customers": 4.0,  # m1, m3, n1, n2
        "new_customers": 2.0,  # m3, n2
        "orders": 9.0,  # 7 of identified customers + 2 anonymous
        "revenue": 550.0,  # 510 + 40
        "revenue_share": 1.0,
        "repurchase_rate": 0.5,  # m1 and n2 bought on two days
        "purchase_frequency": 1.75,  # 7 orders / 4 customers
        "average_order_value": pytest.approx(550 / 9),
        "arpu": 127.5,  # 510 / 4
        "churn_rate": pytest.approx(1 / 3),  # m2 of m1, m2, n1 (Jan 30 - Feb 29)
        "retention_rate": pytest.approx(2 / 3),
        "top_10pct_revenue_share": pytest.approx(360 / 510),  # ceil(0.4) = 1 customer: m1
        "top_20pct_revenue_share": pytest.approx(360 / 510),  # ceil(0.8) = 1 customer
    }


def test_members_versus_non_members(tx: Transactions) -> None:
    rep = compute_kpis(tx, *MARCH)
    assert rep.members == {
        "active_customers": 2.0,
        "new_customers": 1.0,
        "orders": 4.0,
        "revenue": 400.0,
        "revenue_share": pytest.approx(400 / 550),
        "repurchase_rate": 0.5,
        "purchase_frequency": 2.0,
        "average_order_value": 100.0,
        "arpu": 200.0,
        "churn_rate": 0.5,  # m2 of m1, m2
        "retention_rate": 0.5,
        "top_10pct_revenue_share": 0.9,  # m1: 360 of 400
        "top_20pct_revenue_share": 0.9,
    }
    assert rep.non_members == {
        "active_customers": 2.0,  # n1, n2 (anonymous orders are not customers)
        "new_customers": 1.0,  # n2
        "orders": 5.0,  # 3 + 2 anonymous
        "revenue": 150.0,  # 110 + 40 anonymous
        "revenue_share": pytest.approx(150 / 550),
        "repurchase_rate": 0.5,
        "purchase_frequency": 1.5,
        "average_order_value": 30.0,
        "arpu": 55.0,
        "churn_rate": 0.0,  # n1 came back
        "retention_rate": 1.0,
        "top_10pct_revenue_share": pytest.approx(90 / 110),
        "top_20pct_revenue_share": pytest.approx(90 / 110),
    }
    d = rep.to_dict()
    assert list(d) == [
        "start",
        "end",
        "segment",
        "where",
        "anonymous_orders",
        "overall",
        "members",
        "non_members",
    ]
    assert d["start"] == "2024-03-01"


def test_a_segment_restricts_to_its_customers_and_leaves_anonymous_orders_out(
    tx: Transactions,
) -> None:
    rep = compute_kpis(tx, *MARCH, customers=["m1", "n2"], segment_name="Champions")
    assert rep.segment == "Champions"
    assert rep.anonymous_orders == 0
    o = rep.overall
    assert (o["active_customers"], o["orders"], o["revenue"]) == (2.0, 5.0, 380.0)
    assert o["revenue_share"] == pytest.approx(380 / 550)  # of all revenue in the period
    assert o["churn_rate"] == 0.0  # only m1 was active before, and came back
    assert rep.members is not None and rep.members["active_customers"] == 1.0


def test_default_period_is_the_30_days_ending_on_the_last_day(tx: Transactions) -> None:
    rep = compute_kpis(tx)
    assert (rep.start, rep.end) == (dt.date(2024, 3, 3), dt.date(2024, 4, 1))
    assert rep.overall["active_customers"] == 5.0  # m1, m3, n1, n2, m4
    assert rep.anonymous_orders == 1  # the one of 03-03


def test_anonymous_only_groups_have_no_customer_kpis() -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ["7", None, "8", None],
            "occurred_at": ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"],
            "amount": [10.0, 20.0, 30.0, 40.0],
            "is_member": [True, False, True, False],
        }
    )
    tx = normalise(frame, ColumnMap(member="is_member"), anonymous=True)
    rep = compute_kpis(tx, "2024-03-01", "2024-03-04")
    assert rep.non_members is not None
    nm = rep.non_members
    assert (nm["orders"], nm["revenue"], nm["average_order_value"]) == (2.0, 60.0, 30.0)
    assert nm["revenue_share"] == 0.6
    for name in ("active_customers", "new_customers", "repurchase_rate", "arpu", "churn_rate"):
        assert math.isnan(nm[name]), name
    assert rep.overall["active_customers"] == 2.0
    assert rep.overall["arpu"] == 20.0  # 40 of the members / 2


def test_churn_is_undefined_without_a_previous_period(tx: Transactions) -> None:
    rep = compute_kpis(tx, "2024-01-01", "2024-01-31")
    assert math.isnan(rep.overall["churn_rate"])
    assert math.isnan(rep.overall["retention_rate"])
    assert rep.overall["new_customers"] == 1.0


def test_a_period_without_orders_has_zero_counts_and_undefined_ratios(tx: Transactions) -> None:
    rep = compute_kpis(tx, "2024-05-01", "2024-05-31")
    o = rep.overall
    assert (o["active_customers"], o["orders"], o["revenue"]) == (0.0, 0.0, 0.0)
    assert o["churn_rate"] == 1.0  # m4 bought in April and not in May
    assert math.isnan(o["average_order_value"]) and math.isnan(o["revenue_share"])


def test_invalid_periods_are_refused(tx: Transactions) -> None:
    with pytest.raises(InputError, match="start is after its end"):
        compute_kpis(tx, "2024-03-31", "2024-03-01")
    with pytest.raises(InputError, match="ends before the first transaction"):
        compute_kpis(tx, "2023-01-01", "2023-12-31")


def test_every_kpi_has_a_label_and_a_definition_in_both_languages() -> None:
    for name in KPI_NAMES:
        assert all(KPI_LABELS[name]) and all(KPI_DEFINITIONS[name]), name


def test_kpis_of_one_store_or_channel() -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b", "c", None],
            "occurred_at": [
                "2024-02-10",  # previous period, store s1
                "2024-03-05",  # s2
                "2024-02-20",  # previous period, s1
                "2024-03-06",  # s1
                "2024-03-07",  # s1
                "2024-03-08",  # anonymous, s1
            ],
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 5.0],
            "store": ["s1", "s2", "s1", "s1", "s1", "s1"],
            "channel": ["pos", "app", "pos", "pos", "app", "pos"],
        }
    )
    tx = normalise(frame, ColumnMap(store="store", channel="channel"), anonymous=True)
    s1 = compute_kpis(tx, *MARCH, where={"store": "s1"})
    assert s1.where == {"store": "s1"}
    assert s1.to_dict()["where"] == {"store": "s1"}
    o = s1.overall
    assert (o["active_customers"], o["orders"], o["revenue"]) == (2.0, 3.0, 95.0)  # b, c + anon
    assert o["new_customers"] == 1.0  # c; b bought at s1 in February
    assert o["churn_rate"] == 0.5  # a bought at s1 in February, not in March (s2 only)
    pos = compute_kpis(tx, *MARCH, where={"store": "s1", "channel": "pos"})
    assert (pos.overall["orders"], pos.overall["revenue"]) == (2.0, 45.0)
    with pytest.raises(InputError, match="cannot filter on 'city'"):
        compute_kpis(tx, *MARCH, where={"city": "sh"})
    with pytest.raises(InputError, match="no 'tier' column"):
        compute_kpis(tx, *MARCH, where={"tier": "gold"})
    with pytest.raises(InputError, match="no orders with store = 's9'"):
        compute_kpis(tx, *MARCH, where={"store": "s9"})
