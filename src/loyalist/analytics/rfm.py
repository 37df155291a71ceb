"""RFM: recency, frequency and monetary value per customer, 1-5 scores, named segments.

* recency: days from the customer's last purchase to the ``as_of`` date (lower is better);
* frequency: number of orders up to ``as_of``;
* monetary: total amount spent up to ``as_of``.

Scores are quantile bins: each customer's value is ranked (ties share their average rank,
so equal values always get the same score whatever the row order) and the rank's position
in (0, 1] is cut into ``bins`` equal parts.  Recency is scored in reverse so that 5 is the
most recent.  Explicit thresholds can replace the quantiles.

Segments come from the recency score and the rounded mean of the frequency and monetary
scores (FM), on a 5-point scale, by the fixed grid in :data:`SEGMENT_GRID`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions
from loyalist.analytics.summary import DateLike, last_date, to_date

SEGMENTS: tuple[str, ...] = (
    "Champions",
    "Loyal",
    "Potential loyalist",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Can't lose them",
    "Hibernating",
    "Lost",
)

#: segment for (R, FM) on a 1-5 scale; rows are R = 5 .. 1, columns FM = 1 .. 5
SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential loyalist", "Potential loyalist", "Champions", "Champions"),
    3: ("About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At risk", "At risk", "Can't lose them"),
    1: ("Lost", "Lost", "At risk", "At risk", "Can't lose them"),
}


@dataclass(frozen=True)
class RFMConfig:
    """How scores are made: ``bins`` quantiles, or explicit ascending thresholds.

    ``recency_thresholds`` are in days (e.g. ``(30, 90, 180, 365)``: <= 30 days scores 5);
    ``frequency_thresholds`` in orders and ``monetary_thresholds`` in money (a value above
    the last threshold scores highest).
    """

    bins: int = 5
    recency_thresholds: Sequence[float] | None = None
    frequency_thresholds: Sequence[float] | None = None
    monetary_thresholds: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.bins <= 10:
            raise InputError("RFM bins must be between 2 and 10")
        for name in ("recency_thresholds", "frequency_thresholds", "monetary_thresholds"):
            th = getattr(self, name)
            if th is not None:
                if len(th) != self.bins - 1:
                    raise InputError(f"{name} needs {self.bins - 1} values for {self.bins} bins")
                if list(th) != sorted(th):
                    raise InputError(f"{name} must be ascending")


def _quantile_score(col: str, bins: int, *, reverse: bool) -> pl.Expr:
    n = pl.len().cast(pl.Int64)
    # twice the average rank, an integer (an average rank is a whole or half number)
    rank2 = (pl.col(col).rank("average") * 2).cast(pl.Int64)
    if reverse:
        rank2 = 2 * (n + 1) - rank2
    # rank / n in (0, 1]; score = ceil(bins * rank / n), a value in 1..bins, in integers:
    # in floats, 60000 * 5 / 100000 came out above 3 and scored 4 (the Spark engine: 3)
    return ((rank2 * bins + 2 * n - 1) // (2 * n)).clip(1, bins).cast(pl.Int8)


def _threshold_score(col: str, thresholds: Sequence[float], *, reverse: bool) -> pl.Expr:
    bins = len(thresholds) + 1
    expr = pl.lit(1, dtype=pl.Int8)
    # number of thresholds strictly below the value (or at/above for recency) + 1
    count = pl.sum_horizontal([(pl.col(col) > t).cast(pl.Int8) for t in thresholds]).cast(pl.Int8)
    expr = (bins - count) if reverse else (count + 1)
    return expr.cast(pl.Int8)


def customer_rfm(tx: Transactions, as_of: DateLike | None = None) -> pl.DataFrame:
    """recency_days, frequency (orders), monetary (total) per customer up to ``as_of``."""
    end = to_date(as_of, "as_of") if as_of else last_date(tx)
    cutoff = dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    frame = tx.frame.lazy().filter(pl.col("occurred_at") < cutoff)
    out = (
        frame.group_by("customer_id")
        .agg(
            pl.col("occurred_at").max().dt.date().alias("last_purchase"),
            pl.col("occurred_at").min().dt.date().alias("first_purchase"),
            pl.len().alias("frequency"),
            # 0.0 + a1 + a2 + ... in row order (a prefix sum is sequential), not polars'
            # group sum, whose order of addition depends on threads on large frames: equal
            # totals stay equal (ties at a bin edge) and the Spark engine adds the same way
            pl.col("amount").cum_sum().last().alias("monetary"),
        )
        .with_columns((pl.lit(end) - pl.col("last_purchase")).dt.total_days().alias("recency_days"))
        .select(
            "customer_id",
            "recency_days",
            "frequency",
            "monetary",
            "first_purchase",
            "last_purchase",
        )
        .sort("customer_id")
        .collect()
    )
    return out


def segment_expr(r: pl.Expr, fm: pl.Expr) -> pl.Expr:
    """Segment name for R and FM scores on the 1-5 scale."""
    mapping = {
        r_score * 10 + fm_score: name
        for r_score, row in SEGMENT_GRID.items()
        for fm_score, name in enumerate(row, start=1)
    }
    key = r.cast(pl.Int32) * 10 + fm.cast(pl.Int32)
    return key.replace_strict(mapping, default=None, return_dtype=pl.Utf8)


def rfm_scores(
    tx: Transactions, as_of: DateLike | None = None, config: RFMConfig | None = None
) -> pl.DataFrame:
    """RFM values, 1..bins scores, the 5-point R/FM used for naming, and the segment."""
    cfg = config or RFMConfig()
    base = customer_rfm(tx, as_of)
    if base.height == 0:
        raise InputError("no customers with purchases on or before the as-of date")
    b = cfg.bins

    def score(col: str, th: Sequence[float] | None, reverse: bool) -> pl.Expr:
        if th is not None:
            return _threshold_score(col, th, reverse=reverse)
        return _quantile_score(col, b, reverse=reverse)

    scored = base.with_columns(
        score("recency_days", cfg.recency_thresholds, True).alias("r_score"),
        score("frequency", cfg.frequency_thresholds, False).alias("f_score"),
        score("monetary", cfg.monetary_thresholds, False).alias("m_score"),
    )

    def to5(e: pl.Expr) -> pl.Expr:
        return (e.cast(pl.Float64) * 5.0 / b).ceil().clip(1, 5).cast(pl.Int8)

    scored = scored.with_columns(
        pl.concat_str(
            [pl.col("r_score"), pl.col("f_score"), pl.col("m_score")], separator=""
        ).alias("rfm_code"),
        to5(pl.col("r_score")).alias("_r5"),
        # round half up: FM of (4 + 5) / 2 = 4.5 counts as 5
        ((to5(pl.col("f_score")) + to5(pl.col("m_score"))).cast(pl.Float64) / 2.0 + 0.5)
        .floor()
        .cast(pl.Int8)
        .alias("_fm5"),
    )
    return scored.with_columns(segment_expr(pl.col("_r5"), pl.col("_fm5")).alias("segment")).drop(
        "_r5", "_fm5"
    )


def segment_summary(scores: pl.DataFrame) -> pl.DataFrame:
    """Per segment: customers, share of customers, revenue, share of revenue, mean R/F/M."""
    total_c = scores.height
    total_m = float(scores["monetary"].sum()) or 1.0
    out = (
        scores.group_by("segment")
        .agg(
            pl.len().alias("customers"),
            pl.col("monetary").sum().alias("revenue"),
            pl.col("recency_days").mean().alias("mean_recency_days"),
            pl.col("frequency").mean().alias("mean_frequency"),
            pl.col("monetary").mean().alias("mean_monetary"),
        )
        .with_columns(
            (pl.col("customers") / total_c).alias("customer_share"),
            (pl.col("revenue") / total_m).alias("revenue_share"),
        )
    )
    order = pl.DataFrame({"segment": list(SEGMENTS), "_order": list(range(len(SEGMENTS)))})
    return (
        out.join(order, on="segment", how="left")
        .sort("_order")
        .drop("_order")
        .select(
            "segment",
            "customers",
            "customer_share",
            "revenue",
            "revenue_share",
            "mean_recency_days",
            "mean_frequency",
            "mean_monetary",
        )
    )


NOT_ACQUIRED = "Not yet a customer"


def segment_transitions(
    tx: Transactions,
    from_date: DateLike,
    to_date_: DateLike,
    config: RFMConfig | None = None,
) -> pl.DataFrame:
    """Counts of customers moving from each segment at ``from_date`` to each at ``to_date_``.

    Rows are the earlier segment (``NOT_ACQUIRED`` for customers who first bought in
    between), columns the later segment; every customer known at ``to_date_`` is counted
    exactly once.
    """
    a = to_date(from_date, "from_date")
    b = to_date(to_date_, "to_date")
    if b <= a:
        raise InputError("the second date of a transition must be after the first")
    before = rfm_scores(tx, a, config).select("customer_id", pl.col("segment").alias("from"))
    after = rfm_scores(tx, b, config).select("customer_id", pl.col("segment").alias("to"))
    joined = after.join(before, on="customer_id", how="left").with_columns(
        pl.col("from").fill_null(NOT_ACQUIRED)
    )
    counts = joined.group_by("from", "to").len()
    order_from = [NOT_ACQUIRED, *SEGMENTS]
    wide = counts.pivot(on="to", index="from", values="len").fill_null(0)
    present_to = [s for s in SEGMENTS if s in wide.columns]
    rank = pl.DataFrame({"from": order_from, "_o": list(range(len(order_from)))})
    return (
        wide.join(rank, on="from", how="left")
        .sort("_o")
        .select("from", *present_to)
        .with_columns([pl.col(c).cast(pl.Int64) for c in present_to])
    )
