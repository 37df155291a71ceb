"""The whole-analysis functions behind ``loyalist analyze --json``: JSON-ready output."""

from __future__ import annotations

import datetime as dt
import math

import orjson
import polars as pl
import pytest

from loyalist.analytics import api
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import ColumnMap, Transactions, normalise
from loyalist.analytics.kpis import compute_kpis
from loyalist.analytics.rfm import rfm_scores


@pytest.fixture
def tx() -> Transactions:
    rows = []
    start = dt.datetime(2024, 1, 1, 12)
    for c in range(40):
        for k in range(1 + c % 5):
            when = start + dt.timedelta(days=3 * c + 17 * k)
            rows.append((f"c{c:02d}", when, 10.0 + c + k, c % 3 == 0))
    frame = pl.DataFrame(
        rows, schema=["customer_id", "occurred_at", "amount", "member"], orient="row"
    )
    return normalise(frame, ColumnMap(member="member"))


def _json_ready(value: object) -> None:
    """Only JSON types, no NaN (orjson would silently write null for it)."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            _json_ready(v)
    elif isinstance(value, list):
        for v in value:
            _json_ready(v)
    else:
        assert value is None or isinstance(value, str | int | float | bool), type(value)
        if isinstance(value, float):
            assert math.isfinite(value)


def assert_close(cleaned: object, raw: dict[str, float]) -> None:
    """JSON KPIs equal the raw ones (NaN as None; float sums to 1e-12 relative)."""
    assert isinstance(cleaned, dict)
    assert list(cleaned) == list(raw)
    for k, v in raw.items():
        if math.isnan(v):
            assert cleaned[k] is None, k
        else:
            assert cleaned[k] == pytest.approx(v, rel=1e-12), k


def test_clean_replaces_nan_and_dates() -> None:
    assert api.clean({"a": math.nan, 1: [dt.date(2024, 1, 2), math.inf, (1.5,)]}) == {
        "a": None,
        "1": ["2024-01-02", None, [1.5]],
    }


def test_rfm_output(tx: Transactions) -> None:
    data = api.analyze_rfm(tx, as_of="2024-06-30", transitions_from="2024-03-31")
    _json_ready(data)
    assert orjson.loads(orjson.dumps(data)) == data
    assert data["as_of"] == "2024-06-30"
    assert data["customers"] == 40
    assert data["load"] == tx.report.to_dict()
    segments = data["segments"]
    assert isinstance(segments, list)
    assert sum(s["customers"] for s in segments) == 40
    trans = data["transitions"]
    assert isinstance(trans, dict)
    assert (trans["from"], trans["to"]) == ("2024-03-31", "2024-06-30")
    total = sum(v for row in trans["matrix"] for k, v in row.items() if k != "from")
    assert total == 40


def test_kpis_output_and_segment_filter(tx: Transactions) -> None:
    data = api.analyze_kpis(tx, start="2024-03-01", end="2024-03-31")
    _json_ready({k: v for k, v in data.items() if k != "segment"})
    assert_close(data["overall"], compute_kpis(tx, "2024-03-01", "2024-03-31").overall)
    assert set(data) == {
        "load",
        "start",
        "end",
        "segment",
        "where",
        "anonymous_orders",
        "overall",
        "members",
        "non_members",
    }
    seg = api.analyze_kpis(tx, end="2024-06-30", segment="Champions")
    champions = rfm_scores(tx, "2024-06-30").filter(pl.col("segment") == "Champions")["customer_id"]
    expected = compute_kpis(tx, None, "2024-06-30", customers=champions.to_list())
    assert seg["segment"] == "Champions"
    assert_close(seg["overall"], expected.overall)
    with pytest.raises(InputError, match="unknown segment 'Heroes'"):
        api.analyze_kpis(tx, segment="Heroes")


def test_cohort_output_is_cut_at_the_asked_periods(tx: Transactions) -> None:
    data = api.analyze_cohorts(tx, granularity="month", periods=2)
    _json_ready(data)
    cohorts = data["cohorts"]
    assert isinstance(cohorts, list)
    assert max(r["period_index"] for r in cohorts) == 2
    assert cohorts[0]["cohort"] == "2024-01-01"
