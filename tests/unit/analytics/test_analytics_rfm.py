"""RFM on small hand-made data: exact recency/frequency/monetary, quintile scores with
deterministic ties, configurable bins and thresholds, named segments and transitions."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from loyalist.analytics.errors import InputError
from loyalist.analytics.i18n import SEGMENT_NAMES_ZH
from loyalist.analytics.io import LoadReport, Transactions, normalise
from loyalist.analytics.rfm import (
    NOT_ACQUIRED,
    SEGMENT_GRID,
    SEGMENTS,
    RFMConfig,
    customer_rfm,
    rfm_scores,
    segment_expr,
    segment_summary,
    segment_transitions,
)

AS_OF = dt.date(2024, 12, 31)

# customer, recency (days before AS_OF of the last order), orders, total spend
PROFILE = [
    ("c01", 1, 10, 1000.0),
    ("c02", 5, 8, 800.0),
    ("c03", 10, 6, 600.0),
    ("c04", 20, 5, 500.0),
    ("c05", 40, 4, 400.0),
    ("c06", 60, 3, 300.0),
    ("c07", 90, 2, 200.0),
    ("c08", 120, 2, 150.0),  # ties c07 on frequency
    ("c09", 200, 1, 100.0),
    ("c10", 365, 1, 50.0),  # ties c09 on frequency
]


def _tx(rows: list[tuple[str, dt.datetime, float]]) -> Transactions:
    return normalise(
        pl.DataFrame(
            {
                "customer_id": [r[0] for r in rows],
                "occurred_at": [r[1] for r in rows],
                "amount": [r[2] for r in rows],
            }
        )
    )


def _profile_rows(order: list[int] | None = None) -> list[tuple[str, dt.datetime, float]]:
    rows = []
    for cust, recency, n, total in PROFILE:
        last = dt.datetime.combine(AS_OF - dt.timedelta(days=recency), dt.time(15))
        for k in range(n):  # one order a day, ending on the last purchase day
            rows.append((cust, last - dt.timedelta(days=n - 1 - k), total / n))
    if order is not None:
        rows = [rows[i] for i in order]
    return rows


@pytest.fixture
def tx() -> Transactions:
    return _tx(_profile_rows())


def test_recency_frequency_monetary_per_customer(tx: Transactions) -> None:
    base = customer_rfm(tx, AS_OF)
    assert base.select("customer_id", "recency_days", "frequency").rows() == [
        (c, r, n) for c, r, n, _ in PROFILE
    ]
    assert base["monetary"].to_list() == pytest.approx([m for *_, m in PROFILE], abs=1e-9)
    c01 = base.row(0, named=True)
    assert c01["first_purchase"] == dt.date(2024, 12, 21)
    assert c01["last_purchase"] == dt.date(2024, 12, 30)


def test_orders_after_the_as_of_date_are_ignored(tx: Transactions) -> None:
    earlier = customer_rfm(tx, "2024-12-27")
    c01 = earlier.filter(pl.col("customer_id") == "c01").row(0, named=True)
    assert (c01["recency_days"], c01["frequency"]) == (0, 7)  # orders of Dec 21..27
    assert "c01" in earlier["customer_id"].to_list()
    assert earlier.height == 10
    # on 2024-01-01 only c10 had bought (that very day)
    assert customer_rfm(tx, "2024-01-01").select("customer_id", "recency_days").rows() == [
        ("c10", 0)
    ]


def test_quintile_scores_segments_and_codes(tx: Transactions) -> None:
    s = rfm_scores(tx, AS_OF)
    assert s.select(
        "customer_id", "r_score", "f_score", "m_score", "rfm_code", "segment"
    ).rows() == [
        ("c01", 5, 5, 5, "555", "Champions"),
        ("c02", 5, 5, 5, "555", "Champions"),
        ("c03", 4, 4, 4, "444", "Champions"),
        ("c04", 4, 4, 4, "444", "Champions"),
        ("c05", 3, 3, 3, "333", "Need attention"),
        ("c06", 3, 3, 3, "333", "Need attention"),
        ("c07", 2, 2, 2, "222", "Hibernating"),
        ("c08", 2, 2, 2, "222", "Hibernating"),
        ("c09", 1, 1, 1, "111", "Lost"),
        ("c10", 1, 1, 1, "111", "Lost"),
    ]


def test_ties_get_the_same_score_whatever_the_row_order(tx: Transactions) -> None:
    order = list(range(len(_profile_rows())))
    random.Random(7).shuffle(order)
    shuffled = _tx(_profile_rows(order=order))
    assert shuffled.frame["customer_id"].to_list() != tx.frame["customer_id"].to_list()
    a = rfm_scores(tx, AS_OF)
    b = rfm_scores(shuffled, AS_OF)
    assert a.equals(b)
    # c07/c08 share 2 orders (ranks 3 and 4 -> 3.5 -> score 2); c09/c10 share 1 (-> 1)
    f = dict(a.select("customer_id", "f_score").rows())
    assert f["c07"] == f["c08"] == 2
    assert f["c09"] == f["c10"] == 1


def test_a_tie_across_a_bin_boundary_stays_together() -> None:
    # four customers, frequencies 1, 1, 1, 2 and two bins: the three tied at rank 2 (avg)
    # all score 1 although a split by position would put one of them in bin 2
    day = dt.datetime(2024, 1, 1)
    rows = [("a", day, 1.0), ("b", day, 1.0), ("c", day, 1.0), ("d", day, 1.0)]
    rows.append(("d", day + dt.timedelta(days=1), 1.0))
    s = rfm_scores(_tx(rows), "2024-01-02", RFMConfig(bins=2))
    assert s.select("customer_id", "f_score").rows() == [("a", 1), ("b", 1), ("c", 1), ("d", 2)]


def test_three_bins_are_mapped_to_the_five_point_segment_grid(tx: Transactions) -> None:
    s = rfm_scores(tx, AS_OF, RFMConfig(bins=3))
    # ranks r of 10 -> ceil(3 r / 10); recency reversed
    assert s.select("customer_id", "r_score", "f_score", "m_score").rows() == [
        ("c01", 3, 3, 3),
        ("c02", 3, 3, 3),
        ("c03", 3, 3, 3),
        ("c04", 3, 3, 3),
        ("c05", 2, 2, 2),
        ("c06", 2, 2, 2),
        ("c07", 2, 2, 2),
        ("c08", 1, 2, 1),
        ("c09", 1, 1, 1),
        ("c10", 1, 1, 1),
    ]
    # on the 5-point grid 3 -> 5, 2 -> 4, 1 -> 2 (ceil(score * 5 / 3))
    assert s["segment"].to_list() == [
        "Champions",
        "Champions",
        "Champions",
        "Champions",
        "Champions",
        "Champions",
        "Champions",
        "At risk",  # R2, FM round_half_up((4 + 2) / 2) = 3
        "Hibernating",
        "Hibernating",
    ]


def test_explicit_thresholds_replace_quantiles(tx: Transactions) -> None:
    cfg = RFMConfig(
        recency_thresholds=(7, 30, 90, 180),
        frequency_thresholds=(1, 2, 4, 8),
        monetary_thresholds=(100, 300, 500, 800),
    )
    s = rfm_scores(tx, AS_OF, cfg)
    assert s.select("customer_id", "r_score", "f_score", "m_score").rows() == [
        ("c01", 5, 5, 5),  # 1 day, 10 orders, 1000
        ("c02", 5, 4, 4),  # 5 days, 8 orders (<= 8), 800 (<= 800)
        ("c03", 4, 4, 4),
        ("c04", 4, 4, 3),  # 500 is not above 500
        ("c05", 3, 3, 3),
        ("c06", 3, 3, 2),
        ("c07", 3, 2, 2),  # 90 days is not above 90
        ("c08", 2, 2, 2),
        ("c09", 1, 1, 1),
        ("c10", 1, 1, 1),
    ]


def test_invalid_configurations_are_refused() -> None:
    with pytest.raises(InputError, match="between 2 and 10"):
        RFMConfig(bins=1)
    with pytest.raises(InputError, match="needs 4 values"):
        RFMConfig(recency_thresholds=(1, 2, 3))
    with pytest.raises(InputError, match="ascending"):
        RFMConfig(monetary_thresholds=(4, 3, 2, 1))


def test_segment_grid_cells() -> None:
    cells = pl.DataFrame(
        {"r": [r for r in range(1, 6) for _ in range(5)], "fm": list(range(1, 6)) * 5}
    )
    named = cells.with_columns(segment_expr(pl.col("r"), pl.col("fm")).alias("s"))
    lookup = {(r, fm): s for r, fm, s in named.rows()}
    assert lookup[(5, 1)] == "New"
    assert lookup[(4, 1)] == "Promising"
    assert lookup[(5, 5)] == lookup[(4, 4)] == "Champions"
    assert lookup[(3, 4)] == "Loyal"
    assert lookup[(3, 3)] == "Need attention"
    assert lookup[(3, 1)] == "About to sleep"
    assert lookup[(2, 3)] == lookup[(1, 4)] == "At risk"
    assert lookup[(1, 5)] == lookup[(2, 5)] == "Can't lose them"
    assert lookup[(2, 1)] == "Hibernating"
    assert lookup[(1, 1)] == "Lost"
    # every named segment is reachable and has a Chinese name
    assert set(lookup.values()) == set(SEGMENTS)
    assert {name for row in SEGMENT_GRID.values() for name in row} == set(SEGMENTS)
    assert SEGMENT_NAMES_ZH["Champions"] == "重要价值客户"
    assert all(SEGMENT_NAMES_ZH[s] for s in SEGMENTS)


def test_segment_sizes_and_value_shares(tx: Transactions) -> None:
    summary = segment_summary(rfm_scores(tx, AS_OF))
    rows = {r["segment"]: r for r in summary.to_dicts()}
    assert summary["segment"].to_list() == ["Champions", "Need attention", "Hibernating", "Lost"]
    assert rows["Champions"]["customers"] == 4
    assert rows["Champions"]["customer_share"] == 0.4
    assert rows["Champions"]["revenue"] == pytest.approx(2900.0)
    assert rows["Champions"]["revenue_share"] == pytest.approx(2900 / 4100)
    assert rows["Champions"]["mean_recency_days"] == 9.0
    assert rows["Champions"]["mean_frequency"] == 7.25
    assert rows["Lost"]["revenue_share"] == pytest.approx(150 / 4100)
    assert rows["Hibernating"]["mean_monetary"] == pytest.approx(175.0)
    assert summary["customers"].sum() == 10
    assert summary["revenue_share"].sum() == pytest.approx(1.0)


THRESHOLDS = RFMConfig(
    recency_thresholds=(10, 20, 30, 40),
    frequency_thresholds=(1, 2, 3, 4),
    monetary_thresholds=(100, 200, 300, 400),
)


def test_transition_matrix_between_two_dates() -> None:
    rows = [("c1", dt.datetime(2024, 1, 26 + k, 12), 200.0) for k in range(5)]  # Jan 26-30
    rows += [("c2", dt.datetime(2024, 1, 25, 12), 50.0), ("c2", dt.datetime(2024, 3, 28), 50.0)]
    rows += [("c3", dt.datetime(2024, 3, 1, 9), 300.0)]
    tx = _tx(rows)
    before = rfm_scores(tx, "2024-01-31", THRESHOLDS)
    assert before.select("customer_id", "segment").rows() == [("c1", "Champions"), ("c2", "New")]
    after = rfm_scores(tx, "2024-03-31", THRESHOLDS)
    assert after.select("customer_id", "rfm_code", "segment").rows() == [
        ("c1", "155", "Can't lose them"),  # 61 days since the last order
        ("c2", "521", "Potential loyalist"),  # FM = round_half_up(1.5) = 2
        ("c3", "313", "About to sleep"),
    ]
    matrix = segment_transitions(tx, "2024-01-31", "2024-03-31", THRESHOLDS)
    assert matrix.columns == ["from", "Potential loyalist", "About to sleep", "Can't lose them"]
    assert matrix.rows() == [
        (NOT_ACQUIRED, 0, 1, 0),
        ("Champions", 0, 0, 1),
        ("New", 1, 0, 0),
    ]
    with pytest.raises(InputError, match="must be after"):
        segment_transitions(tx, "2024-03-31", "2024-01-31")


def test_no_customer_before_the_as_of_date_is_an_error(tx: Transactions) -> None:
    with pytest.raises(InputError, match="no customers"):
        rfm_scores(tx, "2023-01-01")
    with pytest.raises(InputError, match="not a date"):
        rfm_scores(tx, "31/12/2024")


def test_quantile_scores_are_exact_at_bin_edges() -> None:
    # 100,000 customers spending 1..100,000: rank k scores ceil(5k / 100000) exactly; in floats
    # 60000 * 5 / 100000 came out above 3 and the customer of rank 60,000 scored 4
    n = 100_000
    frame = pl.DataFrame(
        {
            "customer_id": [f"c{i:06d}" for i in range(1, n + 1)],
            "occurred_at": [dt.datetime(2024, 1, 1, 12)] * n,
            "amount": [float(i) for i in range(1, n + 1)],
        }
    )
    tx = Transactions(frame=frame, report=LoadReport("edges", n, n))
    scores = rfm_scores(tx).sort("customer_id")["m_score"].to_list()
    assert scores == [-(-5 * k // n) for k in range(1, n + 1)]
    assert (scores[59_999], scores[60_000]) == (3, 4)
