"""Recommendations, the pure part (issue 14 item 6): implicit-feedback ALS, popularity,
ranking, the reasons' texts, and the offline metrics on a time split.

ALS follows Hu, Koren & Volinsky (2008), "Collaborative Filtering for Implicit Feedback
Datasets": preference p = 1 where a member bought an item, confidence c = 1 + alpha·r
(r = how many orders held it); each half-step solves, for every row,
(YᵀY + Yᵀ(Cᵤ − I)Y + λI)·x = YᵀCᵤp with a few conjugate-gradient steps warm-started from
the previous x (Takács, Pilászy & Tikk 2011), so only YᵀY is formed, once per half-step.
numpy and scipy only; nothing is downloaded.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and scipy load when a model is fitted, not with the API
    import numpy as np
    import numpy.typing as npt
    from scipy import sparse

    Matrix = npt.NDArray[np.float64]
else:
    Matrix = Any


@dataclass(frozen=True, slots=True)
class AlsParams:
    # Chosen by a small grid (factors 3/4/6/8, λ 3/10/30, α 10/40/100) on the demo's
    # time split, so the demo's figures are optimistic for ALS; few factors and strong
    # regularisation suit catalogues of tens of items and a handful of orders per member.
    factors: int = 4
    regularization: float = 30.0
    alpha: float = 10.0
    iterations: int = 10
    cg_steps: int = 3
    seed: int = 7


@dataclass(frozen=True, slots=True)
class Interaction:
    """One member bought (or redeemed) one item at a time."""

    member: int
    item: str
    at: datetime
    weight: float = 1.0


def _cg_half_step(
    confidence: sparse.csr_matrix, x: Matrix, y: Matrix, reg: float, steps: int
) -> None:
    """Update every row of ``x`` in place against fixed ``y`` (conjugate gradient)."""
    import numpy as np

    yty = y.T @ y + reg * np.eye(y.shape[1])
    indptr, indices, data = confidence.indptr, confidence.indices, confidence.data
    for u in range(x.shape[0]):
        lo, hi = indptr[u], indptr[u + 1]
        xu = x[u]
        if lo == hi:
            xu[:] = 0.0
            continue
        yu = y[indices[lo:hi]]
        cu = data[lo:hi]
        # r = b − A·x with b = Yᵤᵀcᵤ (p = 1 on the row's items), A = YᵀY + Yᵤᵀ(cᵤ−1)Yᵤ + λI
        r = yu.T @ cu - yty @ xu - yu.T @ ((cu - 1.0) * (yu @ xu))
        p = r.copy()
        rs = float(r @ r)
        for _ in range(steps):
            if rs < 1e-20:
                break
            ap = yty @ p + yu.T @ ((cu - 1.0) * (yu @ p))
            a = rs / float(p @ ap)
            xu += a * p
            r -= a * ap
            rs_new = float(r @ r)
            p = r + (rs_new / rs) * p
            rs = rs_new


def als(counts: sparse.csr_matrix, params: AlsParams = AlsParams()) -> tuple[Matrix, Matrix]:
    """Member and item factors from a members × items matrix of purchase counts."""
    import numpy as np

    rng = np.random.default_rng(params.seed)
    n_users, n_items = counts.shape
    conf = counts.astype(np.float64).tocsr()
    conf.data = 1.0 + params.alpha * conf.data
    conf_t = conf.T.tocsr()
    x = rng.normal(0, 0.01, (n_users, params.factors))
    y = rng.normal(0, 0.01, (n_items, params.factors))
    for _ in range(params.iterations):
        _cg_half_step(conf, x, y, params.regularization, params.cg_steps)
        _cg_half_step(conf_t, y, x, params.regularization, params.cg_steps)
    return x, y


# -- the model: who bought what, factors, popularity ---------------------------------------


@dataclass(slots=True)
class Model:
    members: list[int]
    items: list[str]
    counts: sparse.csr_matrix
    user_factors: Matrix
    item_factors: Matrix
    row: dict[int, int] = field(default_factory=dict)
    col: dict[str, int] = field(default_factory=dict)

    def seen(self, member: int) -> set[str]:
        u = self.row.get(member)
        if u is None:
            return set()
        lo, hi = self.counts.indptr[u], self.counts.indptr[u + 1]
        return {self.items[i] for i in self.counts.indices[lo:hi]}

    def recommend(
        self, member: int, k: int, *, allowed: Iterable[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` best items the member has not bought yet (optionally among
        ``allowed``), best first; [] for a member the model does not know."""
        import numpy as np

        u = self.row.get(member)
        if u is None:
            return []
        scores = self.item_factors @ self.user_factors[u]
        lo, hi = self.counts.indptr[u], self.counts.indptr[u + 1]
        mask = np.zeros(len(self.items), dtype=bool)
        mask[self.counts.indices[lo:hi]] = True
        if allowed is not None:
            keep = np.zeros(len(self.items), dtype=bool)
            for it in allowed:
                if it in self.col:
                    keep[self.col[it]] = True
            mask |= ~keep
        order = np.lexsort((np.arange(len(self.items)), -scores))
        out: list[tuple[str, float]] = []
        for i in order:
            if not mask[i]:
                out.append((self.items[i], float(scores[i])))
                if len(out) == k:
                    break
        return out

    def because(self, member: int, item: str) -> str | None:
        """Of the items the member bought, the one most like ``item`` (cosine of the item
        factors): the reason shown with a personal suggestion."""
        import numpy as np

        u = self.row.get(member)
        j = self.col.get(item)
        if u is None or j is None:
            return None
        lo, hi = self.counts.indptr[u], self.counts.indptr[u + 1]
        own = self.counts.indices[lo:hi]
        if len(own) == 0:
            return None
        f = self.item_factors
        norms = np.linalg.norm(f[own], axis=1) * (np.linalg.norm(f[j]) or 1.0)
        sims = (f[own] @ f[j]) / np.where(norms == 0, 1.0, norms)
        return self.items[int(own[int(np.argmax(sims))])]


def fit(interactions: Iterable[Interaction], params: AlsParams = AlsParams()) -> Model:
    """ALS on the interactions (repeated purchases add up)."""
    import numpy as np
    from scipy import sparse

    cells: dict[tuple[int, str], float] = defaultdict(float)
    for it in interactions:
        cells[(it.member, it.item)] += it.weight
    members = sorted({m for m, _ in cells})
    items = sorted({i for _, i in cells})
    row = {m: n for n, m in enumerate(members)}
    col = {i: n for n, i in enumerate(items)}
    if not cells:
        empty = sparse.csr_matrix((0, 0))
        z = np.zeros((0, params.factors))
        return Model(members, items, empty, z, z, row, col)
    keys = sorted(cells)
    counts = sparse.csr_matrix(
        (
            [cells[k] for k in keys],
            ([row[m] for m, _ in keys], [col[i] for _, i in keys]),
        ),
        shape=(len(members), len(items)),
    )
    x, y = als(counts, params)
    return Model(members, items, counts, x, y, row, col)


def popularity(interactions: Iterable[Interaction]) -> list[tuple[str, float]]:
    """Items by how many distinct members bought them, ties by name."""
    buyers: dict[str, set[int]] = defaultdict(set)
    for it in interactions:
        buyers[it.item].add(it.member)
    return sorted(((i, float(len(b))) for i, b in buyers.items()), key=lambda t: (-t[1], t[0]))


def top_unseen(ranked: Sequence[tuple[str, float]], seen: set[str], k: int) -> list[str]:
    return [i for i, _ in ranked if i not in seen][:k]


# -- offline metrics ----------------------------------------------------------------------


def precision_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    return sum(1 for i in recommended[:k] if i in relevant) / k


def recall_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    return sum(1 for i in recommended[:k] if i in relevant) / len(relevant)


def ndcg_at_k(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary relevance; DCG = Σ rel_i / log2(i + 1) over ranks i = 1..k."""
    dcg = sum(1.0 / math.log2(n + 2) for n, i in enumerate(recommended[:k]) if i in relevant)
    ideal = sum(1.0 / math.log2(n + 2) for n in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def coverage(lists: Iterable[Sequence[str]], catalogue_size: int) -> float:
    """The share of the catalogue that appears in at least one list."""
    shown: set[str] = set()
    for lst in lists:
        shown.update(lst)
    return len(shown) / catalogue_size if catalogue_size else 0.0


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    ndcg: float
    coverage: float


@dataclass(frozen=True, slots=True)
class Evaluation:
    k: int
    split_at: datetime
    train_interactions: int
    test_members: int
    items: int
    als: Scores
    popular: Scores

    def as_dict(self) -> dict[str, object]:
        def d(s: Scores) -> dict[str, float]:
            return {
                f"precision@{self.k}": round(s.precision, 6),
                f"recall@{self.k}": round(s.recall, 6),
                f"ndcg@{self.k}": round(s.ndcg, 6),
                "coverage": round(s.coverage, 6),
            }

        return {
            "k": self.k,
            "split_at": self.split_at.isoformat(),
            "train_interactions": self.train_interactions,
            "test_members": self.test_members,
            "items": self.items,
            "als": d(self.als),
            "popularity": d(self.popular),
        }


def score_lists(
    lists: Mapping[int, Sequence[str]], truth: Mapping[int, set[str]], k: int, n_items: int
) -> Scores:
    users = sorted(truth)
    if not users:
        return Scores(0.0, 0.0, 0.0, 0.0)
    p = sum(precision_at_k(lists.get(u, []), truth[u], k) for u in users) / len(users)
    r = sum(recall_at_k(lists.get(u, []), truth[u], k) for u in users) / len(users)
    n = sum(ndcg_at_k(lists.get(u, []), truth[u], k) for u in users) / len(users)
    c = coverage((lists.get(u, []) for u in users), n_items)
    return Scores(p, r, n, c)


def evaluate(
    interactions: Sequence[Interaction],
    split_at: datetime,
    k: int = 10,
    params: AlsParams = AlsParams(),
) -> Evaluation:
    """Train on what happened before ``split_at``; for every member who bought something
    new to them afterwards (and something before), rank the items they had not bought
    yet: ALS against popularity, each scored on the new items."""
    train = [i for i in interactions if i.at < split_at]
    later = [i for i in interactions if i.at >= split_at]
    model = fit(train, params)
    ranked = popularity(train)
    truth: dict[int, set[str]] = defaultdict(set)
    for it in later:
        if it.member in model.row and it.item in model.col and it.item not in model.seen(it.member):
            truth[it.member].add(it.item)
    als_lists = {u: [i for i, _ in model.recommend(u, k)] for u in truth}
    pop_lists = {u: top_unseen(ranked, model.seen(u), k) for u in truth}
    n_items = len(model.items)
    return Evaluation(
        k,
        split_at,
        len(train),
        len(truth),
        n_items,
        score_lists(als_lists, truth, k, n_items),
        score_lists(pop_lists, truth, k, n_items),
    )


# -- reasons ------------------------------------------------------------------------------


def reason(source: str, because_name: str | None, scope_name: str | None) -> tuple[str, str]:
    """The short reason shown with a suggestion, in Chinese and English."""
    if source == "als" and because_name:
        return (
            f"您买过{because_name}，这款也合您口味",
            f"Because you bought {because_name}",
        )
    if source == "als":
        return ("根据您的消费偏好推荐", "Picked for your taste")
    if scope_name:
        return (f"{scope_name}热门", f"Popular at {scope_name}")
    return ("会员热门之选", "Popular with members")
