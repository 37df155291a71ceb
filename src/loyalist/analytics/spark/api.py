"""The whole analyses of :mod:`loyalist.analytics.api` on Spark: the same dictionaries.

:mod:`loyalist.analytics.api` routes here when it is given :class:`SparkTransactions`
(``engine == "spark"``), so ``loyalist analyze rfm|cohorts|kpis|clv --engine spark --json``
prints exactly the keys the local engine prints (that module makes them JSON-ready).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from loyalist.analytics.cohorts import Granularity
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions
from loyalist.analytics.rfm import SEGMENTS, RFMConfig
from loyalist.analytics.spark import engine as E
from loyalist.analytics.summary import DateLike, to_date


def load(source: Transactions | str | Path, *, master: str | None = None) -> E.SparkTransactions:
    """Spark transactions from Parquet written by ``loyalist export parquet`` (a path) or
    from transactions already read by the local readers."""
    spark = E.get_session(master)
    if isinstance(source, Transactions):
        return E.from_transactions(spark, source)
    return E.read_parquet(spark, source)


def analyze_rfm(
    stx: E.SparkTransactions,
    *,
    as_of: DateLike | None = None,
    config: RFMConfig | None = None,
    transitions_from: DateLike | None = None,
) -> dict[str, object]:
    if transitions_from is not None:
        raise InputError("--transitions-from is not available with --engine spark yet")
    end = to_date(as_of, "as_of") if as_of else stx.last_date()
    scores = E.rfm_scores(stx, end, config)
    summary = E.segment_summary(scores)
    return {
        "load": stx.report.to_dict(),
        "as_of": end,
        "customers": int(summary["customers"].sum()),
        "segments": summary.to_dicts(),
    }


def rfm_table(
    stx: E.SparkTransactions, as_of: DateLike | None = None, config: RFMConfig | None = None
) -> pl.DataFrame:
    return E.rfm_to_polars(E.rfm_scores(stx, as_of, config))


def analyze_cohorts(
    stx: E.SparkTransactions, *, granularity: Granularity = "month", periods: int = 12
) -> dict[str, object]:
    from pyspark.sql import functions as F

    table = E.cohorts_to_polars(
        E.cohort_table(stx, granularity).filter(F.col("period_index") <= periods)
    )
    return {
        "load": stx.report.to_dict(),
        "granularity": granularity,
        "cohorts": table.to_dicts(),
    }


CLV_COLUMNS = [
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "probability_alive",
    "expected_purchases",
    "expected_spend",
    "clv",
]


def analyze_clv(
    stx: E.SparkTransactions,
    *,
    observation_end: DateLike | None = None,
    unit: str = "W",
    model: str = "bgnbd",
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    margin: float = 1.0,
    top: int = 10,
    calibration_end: DateLike | None = None,
    collect_customers: bool = True,
) -> tuple[dict[str, object], pl.DataFrame]:
    """The CLV summary; the per-customer frame is collected only with
    ``collect_customers`` (else an empty frame: at scale, write it with Spark instead)."""
    from pyspark.sql import functions as F

    if calibration_end is not None:
        raise InputError("--calibration-end is not available with --engine spark yet")
    end = to_date(observation_end, "observation_end") if observation_end else stx.last_date()
    summary = E.summarise(stx, observation_end=end, unit=unit).cache()
    res = E.fit_clv(
        summary,
        model=model,
        unit=unit,
        horizon_days=horizon_days,
        discount_rate_annual=discount_rate,
        margin=margin,
    )
    customers = res.customers.cache()
    scored = E.SparkCLVResult(**{**res.__dict__, "customers": customers})
    top_rows = E.to_polars(
        customers.orderBy(F.col("clv").desc(), F.col("customer_id"))
        .limit(top)
        .select(*CLV_COLUMNS),
        sort=None,
    )
    out: dict[str, object] = {
        "load": stx.report.to_dict(),
        "observation_end": end,
        **scored.to_dict(),
        "top_customers": top_rows.to_dicts(),
    }
    frame = E.summary_to_polars(customers) if collect_customers else pl.DataFrame()
    customers.unpersist()
    summary.unpersist()
    return out, frame


def analyze_kpis(
    stx: E.SparkTransactions,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    segment: str | None = None,
    where: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """:func:`loyalist.analytics.api.analyze_kpis` on Spark: the same figures (an RFM
    segment's customers stay in Spark, as a DataFrame joined to the orders)."""
    from pyspark.sql import functions as F

    customers = None
    if segment is not None:
        if segment not in SEGMENTS:
            raise InputError(f"unknown segment {segment!r}; one of: {', '.join(SEGMENTS)}")
        e = to_date(end, "end") if end else stx.last_date()
        scores = E.rfm_scores(stx, e)
        customers = scores.filter(F.col("segment") == F.lit(segment)).select("customer_id")
        end = e
    rep = E.compute_kpis(
        stx,
        start,
        end,
        customers=customers,
        segment_name=segment,
        where=dict(where) if where else None,
    )
    return {"load": stx.report.to_dict(), **rep.to_dict()}
