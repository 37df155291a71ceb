"""Acquisition cohorts on hand-made data: exact retention and revenue per period."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from loyalist.analytics.cohorts import cohort_table, retention_matrix
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions, normalise

ROWS = [
    ("A", "2024-01-05 10:00", 10.0),
    ("A", "2024-02-10 10:00", 20.0),
    ("A", "2024-04-01 10:00", 5.0),
    ("A", "2024-04-20 10:00", 5.0),
    ("B", "2024-01-31 23:30", 30.0),  # still January in the analysis zone
    ("C", "2024-02-01 09:00", 40.0),
    ("C", "2024-03-15 09:00", 10.0),
    ("D", "2024-02-29 10:00", 25.0),
    ("D", "2024-02-29 18:00", 5.0),  # two orders on one day
]

COLUMNS = [
    "cohort",
    "period_index",
    "cohort_size",
    "active",
    "retention",
    "orders",
    "revenue",
    "revenue_per_customer",
    "cumulative_revenue_per_customer",
]


@pytest.fixture
def tx() -> Transactions:
    return normalise(
        pl.DataFrame(ROWS, schema=["customer_id", "occurred_at", "amount"], orient="row")
    )


def test_monthly_cohorts_retention_and_revenue(tx: Transactions) -> None:
    table = cohort_table(tx, "month")
    assert table.columns == COLUMNS
    jan, feb = dt.date(2024, 1, 1), dt.date(2024, 2, 1)
    assert table.rows() == [
        # January cohort: A and B
        (jan, 0, 2, 2, 1.0, 2, 40.0, 20.0, 20.0),
        (jan, 1, 2, 1, 0.5, 1, 20.0, 10.0, 30.0),
        (jan, 2, 2, 0, 0.0, 0, 0.0, 0.0, 30.0),  # nobody bought in March: 0, not missing
        (jan, 3, 2, 1, 0.5, 2, 10.0, 5.0, 35.0),
        # February cohort: C and D; April (period 2) is the last month of data
        (feb, 0, 2, 2, 1.0, 3, 70.0, 35.0, 35.0),
        (feb, 1, 2, 1, 0.5, 1, 10.0, 5.0, 40.0),
        (feb, 2, 2, 0, 0.0, 0, 0.0, 0.0, 40.0),
    ]


def test_retention_matrix_is_wide_and_leaves_the_future_empty(tx: Transactions) -> None:
    wide = retention_matrix(cohort_table(tx, "month"), max_periods=12)
    assert wide.columns == ["cohort", "cohort_size", "0", "1", "2", "3"]
    assert wide.rows() == [
        (dt.date(2024, 1, 1), 2, 1.0, 0.5, 0.0, 0.5),
        (dt.date(2024, 2, 1), 2, 1.0, 0.5, 0.0, None),
    ]
    assert retention_matrix(cohort_table(tx), max_periods=1).columns == [
        "cohort",
        "cohort_size",
        "0",
        "1",
    ]


def test_weekly_cohorts_start_on_mondays(tx: Transactions) -> None:
    table = cohort_table(tx, "week")
    cohorts = table.select("cohort", "cohort_size").unique().sort("cohort").rows()
    # A: week of Mon 2024-01-01; B: week of Mon 01-29 (with C, Thu 02-01); D: week of 02-26
    assert cohorts == [
        (dt.date(2024, 1, 1), 1),
        (dt.date(2024, 1, 29), 2),
        (dt.date(2024, 2, 26), 1),
    ]
    a = table.filter(pl.col("cohort") == dt.date(2024, 1, 1))
    # A bought in weeks 0, 5 (Sat 02-10), 13 (Mon 04-01) and 15 (Sat 04-20); data end week 15
    assert a["period_index"].to_list() == list(range(16))
    assert a.filter(pl.col("active") > 0)["period_index"].to_list() == [0, 5, 13, 15]
    assert a["cumulative_revenue_per_customer"].to_list()[-1] == 40.0
    b = table.filter(pl.col("cohort") == dt.date(2024, 1, 29))
    assert b.filter(pl.col("active") > 0).select("period_index", "active", "revenue").rows() == [
        (0, 2, 70.0),
        (6, 1, 10.0),  # C on Fri 03-15
    ]


def test_invalid_granularity_is_refused(tx: Transactions) -> None:
    with pytest.raises(InputError, match="'month' or 'week'"):
        cohort_table(tx, "day")  # type: ignore[arg-type]
