"""K-means segments on standardised RFM (and CLV) features, k chosen by silhouette.

Features are log-transformed where they are skewed (frequency, monetary, CLV: log1p) and
then standardised to zero mean and unit variance, so no feature dominates by its units.
k is the value in ``k_range`` with the highest silhouette score, computed on fixed random
samples so that large bases stay fast; every customer then joins the nearest centroid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from loyalist.analytics._typing import FloatArray
from loyalist.analytics.errors import InputError

LOG_FEATURES = frozenset({"frequency", "monetary", "clv", "expected_purchases"})


@dataclass(frozen=True)
class ClusterResult:
    k: int
    silhouette: dict[int, float]
    features: tuple[str, ...]
    assignments: pl.DataFrame  # customer_id, cluster
    profiles: pl.DataFrame  # cluster, customers, share, median of each feature

    def describe(self, lang: str = "en", currency: str = "") -> list[str]:
        """One sentence per cluster: size and typical recency / frequency / value."""
        from loyalist.analytics.i18n import describe_cluster

        return [describe_cluster(row, lang, currency) for row in self.profiles.to_dicts()]

    def to_dict(self, lang: str = "en") -> dict[str, object]:
        return {
            "k": self.k,
            "silhouette": {str(k): v for k, v in self.silhouette.items()},
            "features": list(self.features),
            "profiles": self.profiles.to_dicts(),
            "descriptions": self.describe(lang),
        }


def _matrix(frame: pl.DataFrame, features: Sequence[str]) -> FloatArray:
    cols = []
    for f in features:
        v = frame[f].cast(pl.Float64).to_numpy().astype(np.float64)
        if f in LOG_FEATURES:
            v = np.log1p(np.maximum(v, 0.0))
        cols.append(v)
    mat = np.column_stack(cols)
    mean = mat.mean(axis=0)
    std = mat.std(axis=0)
    std[std == 0] = 1.0
    return np.asarray((mat - mean) / std, dtype=np.float64)


def kmeans_segments(
    frame: pl.DataFrame,
    features: Sequence[str] = ("recency_days", "frequency", "monetary"),
    *,
    k_range: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
    silhouette_sample: int = 3000,
    fit_sample: int = 20_000,
    seed: int = 0,
) -> ClusterResult:
    """Cluster customers; ``frame`` needs ``customer_id`` and the ``features`` columns.

    Each k in ``k_range`` is fitted on a fixed random sample of at most ``fit_sample``
    customers and scored by its silhouette on at most ``silhouette_sample`` of them; with
    the best k (ties: the smaller) every customer joins the nearest of that fit's centroids.
    Deterministic for a seed; on up to ``fit_sample`` customers the fit uses them all.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances, silhouette_score
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    missing = [f for f in ("customer_id", *features) if f not in frame.columns]
    if missing:
        raise InputError(f"clustering input lacks column(s): {', '.join(missing)}")
    n = frame.height
    ks = sorted({k for k in k_range if 2 <= k < n})
    if not ks:
        raise InputError("not enough customers to form two clusters")
    for f in features:
        bad = ~frame[f].cast(pl.Float64).is_finite().fill_null(False)
        if bad.any():
            ids = frame["customer_id"].filter(bad).head(5).to_list()
            raise InputError(
                f"feature {f!r} is missing or not finite for {int(bad.sum()):,} customers "
                f"(e.g. {', '.join(map(str, ids))})",
                rows=[int(i) + 1 for i in bad.arg_true().to_list()],
                column=f,
            )
    mat = _matrix(frame, features)
    if not np.any(mat.std(axis=0) > 0):  # standardised: all zero when every row is equal
        raise InputError("every customer has the same features: nothing to cluster")
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=min(n, fit_sample), replace=False))
    sub = mat[fit_rows]
    sil_rows = rng.choice(sub.shape[0], size=min(sub.shape[0], silhouette_sample), replace=False)
    scores: dict[int, float] = {}
    fitted: dict[int, KMeans] = {}
    # OpenMP threads spin and slow k-means down badly on a busy machine; one thread is fast
    # enough for these few features.
    with threadpool_limits(limits=1):
        # one distance matrix for every k (3,000 customers: 72 MB)
        distances = pairwise_distances(sub[sil_rows])
        for k in ks:
            if k >= sub.shape[0]:
                continue
            fitted[k] = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(sub)
            sub_labels = np.asarray(fitted[k].labels_)[sil_rows]
            if len(set(sub_labels.tolist())) < 2:
                scores[k] = -1.0
                continue
            scores[k] = float(silhouette_score(distances, sub_labels, metric="precomputed"))
        if not scores:
            raise InputError("no k in k_range is smaller than the number of customers fitted")
        best = max(scores, key=lambda k: (scores[k], -k))
        # every customer joins the nearest centroid of the sample's fit
        labels = np.asarray(fitted[best].predict(mat), dtype=np.int64)
    # Relabel clusters by descending median monetary (or first feature) for stable output.
    key = "monetary" if "monetary" in features else features[0]
    tmp = frame.select("customer_id", *features).with_columns(pl.Series("_raw", labels))
    order = (
        tmp.group_by("_raw")
        .agg(pl.col(key).median().alias("_m"))
        .sort(["_m", "_raw"], descending=[True, False])["_raw"]
        .to_list()
    )
    mapping = {int(old): new for new, old in enumerate(order, start=1)}
    tmp = tmp.with_columns(
        pl.col("_raw").replace_strict(mapping, return_dtype=pl.Int64).alias("cluster")
    ).drop("_raw")
    profiles = (
        tmp.group_by("cluster")
        .agg(pl.len().alias("customers"), *[pl.col(f).median().alias(f) for f in features])
        .with_columns((pl.col("customers") / n).alias("share"))
        .sort("cluster")
    )
    return ClusterResult(
        k=best,
        silhouette=scores,
        features=tuple(features),
        assignments=tmp.select("customer_id", "cluster"),
        profiles=profiles,
    )
