"""Whole analyses as plain dictionaries: what ``loyalist analyze ... --json`` prints.

Each function takes :class:`Transactions` and returns JSON-ready data (numbers, strings,
ISO dates, lists and dicts), so the CLI output and the Python API agree by construction.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

import polars as pl

from loyalist.analytics.cohorts import Granularity, cohort_table
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions
from loyalist.analytics.kpis import compute_kpis
from loyalist.analytics.rfm import (
    SEGMENTS,
    RFMConfig,
    rfm_scores,
    segment_summary,
    segment_transitions,
)
from loyalist.analytics.summary import DateLike, last_date, summarise, to_date

if TYPE_CHECKING:
    from loyalist.analytics.clv import ModelName
    from loyalist.analytics.spark.engine import SparkTransactions

# The model and clustering modules (SciPy, scikit-learn) are imported inside the functions
# that need them, so that the CLI starts quickly.

JSONValue = object


def clean(value: object) -> object:
    """Replace NaN/inf by None and dates by ISO strings, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def as_json_dict(value: dict[str, object]) -> dict[str, object]:
    cleaned = clean(value)
    assert isinstance(cleaned, dict)
    return cleaned


def _on_spark(tx: object) -> bool:
    """Transactions held by Spark (:mod:`loyalist.analytics.spark`): route there."""
    return getattr(tx, "engine", "local") == "spark"


def rfm_table(
    tx: Transactions | SparkTransactions,
    as_of: DateLike | None = None,
    config: RFMConfig | None = None,
) -> pl.DataFrame:
    """The per-customer RFM table (what ``--export`` writes), on either engine."""
    if _on_spark(tx):
        from loyalist.analytics.spark import api as spark_api

        return spark_api.rfm_table(cast("SparkTransactions", tx), as_of, config)
    assert isinstance(tx, Transactions)
    return rfm_scores(tx, as_of, config)


def analyze_rfm(
    tx: Transactions | SparkTransactions,
    *,
    as_of: DateLike | None = None,
    config: RFMConfig | None = None,
    transitions_from: DateLike | None = None,
) -> dict[str, object]:
    if _on_spark(tx):
        from loyalist.analytics.spark import api as spark_api

        return as_json_dict(
            spark_api.analyze_rfm(
                cast("SparkTransactions", tx),
                as_of=as_of,
                config=config,
                transitions_from=transitions_from,
            )
        )
    assert isinstance(tx, Transactions)
    end = to_date(as_of, "as_of") if as_of else last_date(tx)
    scores = rfm_scores(tx, end, config)
    out: dict[str, object] = {
        "load": tx.report.to_dict(),
        "as_of": end,
        "customers": scores.height,
        "segments": segment_summary(scores).to_dicts(),
    }
    if transitions_from is not None:
        trans = segment_transitions(tx, transitions_from, end, config)
        out["transitions"] = {
            "from": to_date(transitions_from),
            "to": end,
            "matrix": trans.to_dicts(),
        }
    return as_json_dict(out)


def analyze_cohorts(
    tx: Transactions | SparkTransactions,
    *,
    granularity: Granularity = "month",
    periods: int = 12,
) -> dict[str, object]:
    if _on_spark(tx):
        from loyalist.analytics.spark import api as spark_api

        return as_json_dict(
            spark_api.analyze_cohorts(
                cast("SparkTransactions", tx), granularity=granularity, periods=periods
            )
        )
    assert isinstance(tx, Transactions)
    table = cohort_table(tx, granularity).filter(pl.col("period_index") <= periods)
    return as_json_dict(
        {
            "load": tx.report.to_dict(),
            "granularity": granularity,
            "cohorts": table.to_dicts(),
        }
    )


def analyze_kpis(
    tx: Transactions | SparkTransactions,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    segment: str | None = None,
    where: Mapping[str, str] | None = None,
) -> dict[str, object]:
    if _on_spark(tx):
        from loyalist.analytics.spark import api as spark_api

        return as_json_dict(
            spark_api.analyze_kpis(
                cast("SparkTransactions", tx), start=start, end=end, segment=segment, where=where
            )
        )
    assert isinstance(tx, Transactions)
    customers: list[str] | None = None
    if segment is not None:
        if segment not in SEGMENTS:
            raise InputError(f"unknown segment {segment!r}; one of: {', '.join(SEGMENTS)}")
        e = to_date(end, "end") if end else last_date(tx)
        scores = rfm_scores(tx, e)
        customers = scores.filter(pl.col("segment") == segment)["customer_id"].to_list()
        end = e
    rep = compute_kpis(tx, start, end, customers=customers, segment_name=segment, where=where)
    return as_json_dict({"load": tx.report.to_dict(), **rep.to_dict()})


def analyze_clv(
    tx: Transactions | SparkTransactions,
    *,
    observation_end: DateLike | None = None,
    unit: str = "W",
    model: ModelName = "bgnbd",
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    margin: float = 1.0,
    top: int = 10,
    calibration_end: DateLike | None = None,
    collect_customers: bool = True,
) -> tuple[dict[str, object], pl.DataFrame]:
    """The CLV summary (and the per-customer frame, for exports; on Spark only with
    ``collect_customers``)."""
    if _on_spark(tx):
        from loyalist.analytics.spark import api as spark_api

        data, frame = spark_api.analyze_clv(
            cast("SparkTransactions", tx),
            observation_end=observation_end,
            unit=unit,
            model=model,
            horizon_days=horizon_days,
            discount_rate=discount_rate,
            margin=margin,
            top=top,
            calibration_end=calibration_end,
            collect_customers=collect_customers,
        )
        return as_json_dict(data), frame
    assert isinstance(tx, Transactions)
    from loyalist.analytics.clv import fit_clv
    from loyalist.analytics.validation import holdout_validation

    summ = summarise(tx, observation_end=observation_end, unit=unit)
    res = fit_clv(
        summ,
        model=model,
        unit=unit,
        horizon_days=horizon_days,
        discount_rate_annual=discount_rate,
        margin=margin,
    )
    cols = [
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
    out: dict[str, object] = {
        "load": tx.report.to_dict(),
        "observation_end": to_date(observation_end) if observation_end else last_date(tx),
        **res.to_dict(),
        "top_customers": res.customers.sort("clv", descending=True)
        .head(top)
        .select(cols)
        .to_dicts(),
    }
    if calibration_end is not None:
        val = holdout_validation(
            tx,
            calibration_end=calibration_end,
            holdout_end=observation_end,
            model=model,
            unit=unit,
        )
        out["validation"] = val.to_dict()
    return as_json_dict(out), res.customers


def analyze_segments(
    tx: Transactions,
    *,
    as_of: DateLike | None = None,
    k_range: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
    with_clv: bool = False,
    unit: str = "W",
    lang: str = "en",
    seed: int = 0,
) -> tuple[dict[str, object], pl.DataFrame]:
    from loyalist.analytics.clv import fit_clv
    from loyalist.analytics.segments import kmeans_segments

    end = to_date(as_of, "as_of") if as_of else last_date(tx)
    frame = rfm_scores(tx, end)
    features: tuple[str, ...] = ("recency_days", "frequency", "monetary")
    if with_clv:
        res = fit_clv(summarise(tx, observation_end=end, unit=unit), unit=unit)
        n_bad = int((~res.customers["clv"].is_finite()).sum())
        if n_bad:
            fit = res.purchase_model.fit_result
            reason = fit.convergence.reason if fit is not None else "unknown"
            raise InputError(
                f"CLV is not finite for {n_bad:,} customers (purchase model: {reason}); "
                "cluster without --with-clv"
            )
        frame = frame.join(
            res.customers.select("customer_id", "clv"), on="customer_id", how="left"
        ).with_columns(pl.col("clv").fill_null(0.0))
        features = (*features, "clv")
    clusters = kmeans_segments(frame, features, k_range=k_range, seed=seed)
    assigned = frame.join(clusters.assignments, on="customer_id")
    out = {"load": tx.report.to_dict(), "as_of": end, **clusters.to_dict(lang)}
    return as_json_dict(out), assigned
