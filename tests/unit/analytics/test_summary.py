"""Calibration summary from raw transactions: standard definitions, checked by hand and
against a plain-Python reference on random tables."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.analytics.errors import InputError
from loyalist.analytics.io import LoadReport, Transactions
from loyalist.analytics.models._base import first_rows
from loyalist.analytics.summary import calibration_holdout, summarise


def _tx(rows: list[tuple[str, dt.datetime, float]]) -> Transactions:
    frame = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "occurred_at": [r[1] for r in rows],
            "amount": [r[2] for r in rows],
        },
        schema={"customer_id": pl.Utf8, "occurred_at": pl.Datetime("us"), "amount": pl.Float64},
    )
    return Transactions(frame=frame, report=LoadReport(source="test", rows_read=len(rows)))


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2024, 1, 1, hour) + dt.timedelta(days=day)


def test_summary_follows_the_standard_definitions() -> None:
    # given: A buys on days 0 (twice), 7 (twice) and 21; B once on day 3; C twice on day 10;
    # D first buys after the end of observation
    tx = _tx(
        [
            ("A", at(0, 9), 10.0),
            ("A", at(0, 18), 5.0),
            ("B", at(3), 40.0),
            ("A", at(7, 9), 20.0),
            ("A", at(7, 20), 2.0),
            ("C", at(10, 9), 7.0),
            ("C", at(10, 10), 8.0),
            ("A", at(21), 30.0),
            ("D", at(40), 99.0),
        ]
    )
    # when summarised in weeks up to day 28
    s = summarise(tx, observation_end=at(28).date(), unit="W")
    rows = {r["customer_id"]: r for r in s.to_dicts()}
    # then: repeat purchases are counted per day, the first day excluded
    assert set(rows) == {"A", "B", "C"}
    a = rows["A"]
    assert a["frequency"] == 2
    assert a["recency"] == pytest.approx(21 / 7)
    assert a["T"] == pytest.approx(28 / 7)
    assert a["monetary_value"] == pytest.approx((22.0 + 30.0) / 2)
    assert a["orders"] == 5
    assert a["revenue"] == pytest.approx(67.0)
    assert a["first_purchase"] == dt.date(2024, 1, 1)
    assert a["last_purchase"] == dt.date(2024, 1, 22)
    assert (rows["B"]["frequency"], rows["B"]["recency"], rows["B"]["monetary_value"]) == (0, 0, 0)
    assert rows["B"]["T"] == pytest.approx(25 / 7)
    # two orders on one day are one purchase: no repeat purchase for C
    assert rows["C"]["frequency"] == 0 and rows["C"]["orders"] == 2
    assert rows["C"]["revenue"] == pytest.approx(15.0)
    # one row per customer, in order of first transaction
    assert s["customer_id"].to_list() == ["A", "B", "C"]
    assert s.schema["frequency"] == pl.Int64 and s.schema["first_purchase"] == pl.Date


def test_summary_in_days_and_without_an_end_uses_the_last_transaction_day() -> None:
    tx = _tx([("A", at(0), 1.0), ("A", at(5), 3.0), ("B", at(9), 2.0)])
    s = summarise(tx, unit="D")
    a = s.filter(pl.col("customer_id") == "A").row(0, named=True)
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (1, 5.0, 9.0, 3.0)


def test_nothing_before_the_end_is_an_error() -> None:
    with pytest.raises(InputError, match="no transactions on or before"):
        summarise(_tx([("A", at(5), 1.0)]), observation_end=at(1).date())


def test_first_rows_of_codes_numbered_by_first_appearance() -> None:
    codes = np.array([0, 1, 0, 2, 1, 3, 3, 0], dtype=np.int64)
    assert first_rows(codes).tolist() == [0, 1, 3, 5]


def _reference(rows: list[tuple[str, int, float]], end: int) -> dict[str, tuple[float, ...]]:
    per: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for cust, day, amount in rows:
        if day <= end:
            per[cust][day] += amount
    out = {}
    for cust, days in per.items():
        first, last = min(days), max(days)
        x = len(days) - 1
        repeat = sum(v for d, v in days.items() if d != first)
        out[cust] = (x, float(last - first), float(end - first), repeat / x if x else 0.0)
    return out


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([f"c{i}" for i in range(12)]),
            st.integers(0, 60),
            st.floats(0.01, 500.0),
        ),
        min_size=1,
        max_size=80,
    ),
    end=st.integers(0, 60),
)
def test_summary_equals_a_plain_python_reference(
    rows: list[tuple[str, int, float]], end: int
) -> None:
    tx = _tx([(c, at(d, 8 + i % 12), a) for i, (c, d, a) in enumerate(rows)])
    expected = _reference(rows, end)
    if not expected:
        with pytest.raises(InputError):
            summarise(tx, observation_end=at(end).date(), unit="D")
        return
    s = summarise(tx, observation_end=at(end).date(), unit="D")
    got = {
        r["customer_id"]: (r["frequency"], r["recency"], r["T"], r["monetary_value"])
        for r in s.to_dicts()
    }
    assert got.keys() == expected.keys()
    for cust, exp in expected.items():
        assert got[cust][:3] == exp[:3]
        assert got[cust][3] == pytest.approx(exp[3], rel=1e-12)


def test_calibration_holdout_counts_purchase_days_after_the_calibration() -> None:
    tx = _tx(
        [
            ("A", at(0), 10.0),
            ("A", at(3), 10.0),
            ("A", at(12, 9), 4.0),
            ("A", at(12, 15), 6.0),
            ("A", at(15), 20.0),
            ("B", at(2), 5.0),
            ("C", at(11), 5.0),  # acquired in the holdout: not included
        ]
    )
    h = calibration_holdout(tx, calibration_end=at(10).date(), holdout_end=at(17).date(), unit="D")
    rows = {r["customer_id"]: r for r in h.to_dicts()}
    assert set(rows) == {"A", "B"}
    assert rows["A"]["frequency"] == 1
    assert rows["A"]["frequency_holdout"] == 2
    assert rows["A"]["monetary_value_holdout"] == pytest.approx(15.0)
    assert rows["B"]["frequency_holdout"] == 0
    assert rows["A"]["duration_holdout"] == pytest.approx(7.0)


def test_a_hash_collision_between_customers_is_detected_and_handled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a hash under which every customer id collides
    real_hash = pl.Series.hash

    def colliding(self: pl.Series, seed: int = 0, *args: object, **kwargs: object) -> pl.Series:
        out = real_hash(self, seed, *args, **kwargs)  # type: ignore[arg-type]
        return out * 0 if seed == 0 else out

    tx = _tx([("A", at(0), 1.0), ("B", at(1), 2.0), ("A", at(3), 4.0), ("B", at(1, 18), 8.0)])
    expected = summarise(tx, unit="D").to_dicts()
    monkeypatch.setattr(pl.Series, "hash", colliding)
    # when summarised, then the customers are still told apart
    assert summarise(tx, unit="D").to_dicts() == expected
    assert [r["customer_id"] for r in expected] == ["A", "B"]
    assert [r["frequency"] for r in expected] == [1, 0]
