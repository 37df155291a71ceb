"""K-means segments: k chosen by silhouette on standardised features, stable cluster
numbers, and profiles described in words."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from loyalist.analytics.api import analyze_segments
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import normalise
from loyalist.analytics.segments import kmeans_segments

# three well separated groups of 10 customers: (recency days, orders, spend)
GROUPS = {"hi": (2, 20, 2000.0), "mid": (100, 5, 300.0), "lo": (300, 1, 20.0)}


def _frame() -> pl.DataFrame:
    rows = []
    for name, (r, f, m) in GROUPS.items():
        for i in range(10):
            # small spread inside a group, identical medians
            d = (i - 4.5) / 4.5
            rows.append((f"{name}{i:02d}", r + round(d), f, m * (1 + 0.01 * d)))
    return pl.DataFrame(
        rows, schema=["customer_id", "recency_days", "frequency", "monetary"], orient="row"
    )


def test_three_groups_give_k_3_with_clusters_numbered_by_value() -> None:
    res = kmeans_segments(_frame(), k_range=range(2, 7))
    assert res.k == 3
    assert set(res.silhouette) == {2, 3, 4, 5, 6}
    assert res.silhouette[3] == max(res.silhouette.values())
    assert res.silhouette[3] > 0.9
    clusters = dict(res.assignments.rows())
    assert {clusters[f"hi{i:02d}"] for i in range(10)} == {1}
    assert {clusters[f"mid{i:02d}"] for i in range(10)} == {2}
    assert {clusters[f"lo{i:02d}"] for i in range(10)} == {3}
    assert res.profiles.select("cluster", "customers", "share", "frequency").rows() == [
        (1, 10, pytest.approx(1 / 3), 20.0),
        (2, 10, pytest.approx(1 / 3), 5.0),
        (3, 10, pytest.approx(1 / 3), 1.0),
    ]


def test_profiles_are_described_in_words_in_english_and_chinese() -> None:
    res = kmeans_segments(_frame(), k_range=(3,))
    assert res.describe("en", "¥") == [
        "Cluster 1: 10 customers (33.3%); a typical one last bought 2 days ago, 20 orders, "
        "¥2,000 spent.",
        "Cluster 2: 10 customers (33.3%); a typical one last bought 100 days ago, 5 orders, "
        "¥300 spent.",
        "Cluster 3: 10 customers (33.3%); a typical one last bought 300 days ago, 1 order, "
        "¥20 spent.",
    ]
    assert res.describe("zh")[0] == (
        "第 1 群：10 位客户（33.3%），典型客户上次购买在 2 天前，20 笔订单，累计消费 2,000。"
    )
    assert res.to_dict()["descriptions"] == res.describe("en")


def test_the_same_seed_gives_the_same_clusters() -> None:
    frame = _frame().sample(fraction=1.0, shuffle=True, seed=3)
    a = kmeans_segments(frame, seed=5)
    b = kmeans_segments(frame, seed=5)
    assert a.assignments.equals(b.assignments)
    assert a.silhouette == b.silhouette


def test_too_few_customers_or_nothing_to_separate_is_an_error() -> None:
    with pytest.raises(InputError, match="not enough customers"):
        kmeans_segments(_frame().head(2))
    same = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "recency_days": [1] * 3,
            "frequency": [1] * 3,
            "monetary": [5.0] * 3,
        }
    )
    with pytest.raises(InputError, match="nothing to cluster"):
        kmeans_segments(same)
    with pytest.raises(InputError, match="lacks column"):
        kmeans_segments(_frame(), ("recency_days", "clv"))


def test_analyze_segments_from_transactions() -> None:
    end = dt.datetime(2024, 12, 31, 12)
    rows = []
    for name, (r, f, m) in GROUPS.items():
        for i in range(10):
            for k in range(f):
                when = end - dt.timedelta(days=r + i + 2 * k)
                rows.append((f"{name}{i}", when, m * (1 + 0.01 * i) / f))
    tx = normalise(
        pl.DataFrame(rows, schema=["customer_id", "occurred_at", "amount"], orient="row")
    )
    data, assigned = analyze_segments(tx, as_of="2024-12-31", k_range=range(2, 6))
    assert data["k"] == 3
    assert data["as_of"] == "2024-12-31"
    assert [p["customers"] for p in data["profiles"]] == [10, 10, 10]  # type: ignore[attr-defined]
    assert assigned.height == 30
    assert set(assigned.columns) >= {"customer_id", "segment", "cluster", "monetary"}


def test_non_finite_features_are_named_not_clustered() -> None:
    frame = _frame().with_columns(
        pl.when(pl.col("customer_id").is_in(["mid03", "lo07"]))
        .then(float("nan"))
        .otherwise(pl.col("monetary"))
        .alias("monetary")
    )
    with pytest.raises(InputError) as exc:
        kmeans_segments(frame)
    assert exc.value.rows == [14, 28]
    assert exc.value.column == "monetary"
    assert str(exc.value).startswith(
        "feature 'monetary' is missing or not finite for 2 customers (e.g. mid03, lo07)"
    )
