"""Recommendations, the pure part: metrics equal hand-computed values; ALS learns tastes."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from loyalist.recommend import domain
from loyalist.recommend.domain import Interaction


def test_metrics_equal_hand_computed_values() -> None:
    recommended = ["a", "b", "c", "d", "e"]
    relevant = {"b", "e", "x"}
    # hits at ranks 2 and 5 of 5
    assert domain.precision_at_k(recommended, relevant, 5) == 2 / 5
    assert domain.recall_at_k(recommended, relevant, 5) == 2 / 3
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert domain.ndcg_at_k(recommended, relevant, 5) == pytest.approx(dcg / idcg, abs=1e-12)
    assert domain.precision_at_k(recommended, relevant, 2) == 1 / 2
    assert domain.recall_at_k(recommended, relevant, 1) == 0.0
    assert domain.ndcg_at_k(["x"], relevant, 1) == 1.0
    assert domain.ndcg_at_k(["a"], set(), 1) == 0.0
    assert domain.coverage([["a", "b"], ["b", "c"]], 6) == 3 / 6


def test_score_lists_averages_over_the_test_members() -> None:
    s = domain.score_lists(
        {1: ["a", "b"], 2: ["c", "d"]}, {1: {"a"}, 2: {"x", "y"}}, k=2, n_items=8
    )
    assert s.precision == (1 / 2 + 0) / 2
    assert s.recall == (1 + 0) / 2
    assert s.ndcg == (1.0 + 0.0) / 2
    assert s.coverage == 4 / 8


def test_popularity_counts_distinct_buyers_and_breaks_ties_by_name() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    bought = [(1, "b"), (1, "b"), (2, "a"), (3, "c"), (4, "c")]
    got = domain.popularity([Interaction(m, i, t) for m, i in bought])
    assert got == [("c", 2.0), ("a", 1.0), ("b", 1.0)]
    assert domain.top_unseen(got, {"c"}, 1) == ["a"]


def _tastes(seed: int = 3) -> list[Interaction]:
    """Three groups of members, each buying mostly from its own third of 30 items, plus a
    few items everyone buys (what popularity finds)."""
    rng = random.Random(seed)
    items = [f"i{n:02d}" for n in range(30)]
    groups = [items[0:10], items[10:20], items[20:30]]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for m in range(300):
        for _ in range(rng.randint(4, 12)):
            pool = groups[m % 3] if rng.random() < 0.8 else items[:4]
            out.append(Interaction(m, rng.choice(pool), t0 + timedelta(days=rng.randint(0, 299))))
    return out


def test_als_beats_popularity_on_taste_structure_and_excludes_what_was_bought() -> None:
    data = _tastes()
    split = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=240)
    e = domain.evaluate(data, split, k=5, params=domain.AlsParams(iterations=8))  # fewer: fast
    assert e.test_members > 50
    assert e.als.ndcg > e.popular.ndcg
    assert e.als.coverage > e.popular.coverage
    model = domain.fit(data, domain.AlsParams(iterations=8))
    seen = model.seen(0)
    recs = [i for i, _ in model.recommend(0, 5)]
    assert recs and not set(recs) & seen
    # member 0 is in the first group: its suggestions come from the first third mostly
    assert sum(1 for i in recs if i < "i10") >= 3
    assert model.recommend(10_000, 5) == []
    assert model.because(0, recs[0]) in seen


def test_cg_als_matches_the_exact_least_squares_solution() -> None:
    """Enough CG steps on a factor count of 3 reach the exact solution of each row's
    normal equations (a CG in n dimensions converges in n steps)."""
    import numpy as np
    from scipy import sparse

    counts = sparse.csr_matrix(np.array([[1, 0, 2, 0], [0, 1, 0, 1], [1, 1, 0, 0]], float))
    p = domain.AlsParams(factors=3, regularization=0.1, alpha=2.0, iterations=1, cg_steps=3)
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, (4, 3))
    x = np.zeros((3, 3))
    conf = counts.copy()
    conf.data = 1.0 + p.alpha * conf.data
    domain._cg_half_step(conf, x, y, p.regularization, 3)
    dense = conf.toarray()
    for u in range(3):
        c = np.where(dense[u] > 0, dense[u], 1.0)
        pref = (dense[u] > 0).astype(float)
        a = y.T @ (c[:, None] * y) + p.regularization * np.eye(3)
        b = y.T @ (c * pref)
        assert np.allclose(x[u], np.linalg.solve(a, b), atol=1e-8)


def test_reasons_in_both_languages() -> None:
    assert domain.reason("als", "LATTE", None) == (
        "您买过LATTE，这款也合您口味",
        "Because you bought LATTE",
    )
    assert domain.reason("popular", None, "上海南京路店") == (
        "上海南京路店热门",
        "Popular at 上海南京路店",
    )
    assert domain.reason("popular", None, None) == ("会员热门之选", "Popular with members")
