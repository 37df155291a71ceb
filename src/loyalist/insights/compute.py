"""The figures of the console's analytics section, computed by ``loyalist.analytics`` on the
programme's own orders (the only module of the platform besides the CLI that imports it).

Every function reads the orders of the members a scope covers (their home org path starts
with it) through :func:`loyalist.analytics.read_database` and calls the analytics package's
own functions, so what the console shows is what ``loyalist analyze`` computes on the same
orders. Results are plain JSON (numbers, strings, ISO dates) for ``analytics_run.result``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection

from loyalist.analytics import (
    BGNBD,
    PLATFORM_COLUMNS,
    AnalyticsError,
    Transactions,
    cohort_table,
    fit_clv,
    read_database,
    rfm_scores,
    segment_summary,
    segment_transitions,
    summarise,
)
from loyalist.analytics.economics import (
    HOLDERS_MATCHING,
    PassEconomics,
    ProgrammeCost,
    holdout_effect,
    pass_effect,
)
from loyalist.analytics.i18n import SEGMENT_NAMES_ZH
from loyalist.analytics.rfm import NOT_ACQUIRED, SEGMENTS

__all__ = [
    "AT_RISK_SEGMENTS",
    "AnalyticsError",
    "clv",
    "cohorts",
    "member_rfm",
    "movement",
    "segments",
]

# The orders of identified members whose home is inside the scope (amounts in fen, UTC).
_SCOPED_ORDERS = """
SELECT o.external_id AS external_id,
       o.member_id AS member_id,
       o.occurred_at AS occurred_at,
       o.amount_paid_minor AS amount_paid_minor,
       o.refunded_minor AS refunded_minor,
       s.code AS store,
       o.channel AS channel,
       m.tier_code AS tier,
       1 AS is_member
FROM orders o
JOIN member m ON m.id = o.member_id
LEFT JOIN org_unit s ON s.id = o.store_id
WHERE m.org_path LIKE '{prefix}%'
ORDER BY o.id
"""
_PATH = re.compile(r"^/(?:\d+/)*$")

#: Segments whose members are valuable and slipping away: the at-risk list.
AT_RISK_SEGMENTS: tuple[str, ...] = ("Can't lose them", "At risk")
#: How many at-risk members a run keeps (the most valuable first).
AT_RISK_LIMIT = 2000
#: CLV settings (the CLI's defaults): weekly unit, one year ahead, 10 % a year.
CLV_UNIT = "W"
CLV_HORIZON_DAYS = 365.0
COHORT_PERIODS = 12
COHORT_LIMIT = 12  # the latest acquisition months shown


def read_orders(conn: Connection, org_path: str, timezone: str) -> Transactions:
    """The scope's member orders as analytics transactions (yuan, programme-local days)."""
    if not _PATH.match(org_path):
        raise ValueError(f"not an org path: {org_path!r}")
    return read_database(
        conn,
        query=_SCOPED_ORDERS.format(prefix=org_path),
        columns=PLATFORM_COLUMNS,
        timezone=timezone,
        naive_timezone="UTC",
        amount_scale=0.01,
    )


def until(tx: Transactions, as_of: dt.date) -> Transactions:
    """The transactions up to the end of ``as_of`` (what was known that day)."""
    cutoff = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    frame = tx.frame.filter(pl.col("occurred_at").dt.replace_time_zone(None) < cutoff)
    return Transactions(frame=frame, report=tx.report, anonymous=tx.anonymous)


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: _num(v) for k, v in row.items()} for row in frame.to_dicts()]


def segments(tx: Transactions, as_of: dt.date) -> dict[str, Any]:
    """RFM segments at ``as_of``: customers, revenue and means per segment."""
    if tx.frame.height == 0:
        return {"customers": 0, "segments": []}
    scores = rfm_scores(tx, as_of)
    return {"customers": scores.height, "segments": _rows(segment_summary(scores))}


def movement(tx: Transactions, compare_from: dt.date, as_of: dt.date) -> dict[str, Any]:
    """How many members moved from each segment at ``compare_from`` to each at ``as_of``."""
    if tx.frame.height == 0:
        return {"from": compare_from.isoformat(), "to": as_of.isoformat(), "matrix": []}
    matrix = segment_transitions(tx, compare_from, as_of)
    return {"from": compare_from.isoformat(), "to": as_of.isoformat(), "matrix": _rows(matrix)}


def cohorts(tx: Transactions) -> dict[str, Any]:
    """Monthly acquisition cohorts: size and retention for periods 0 .. COHORT_PERIODS."""
    if tx.frame.height == 0:
        return {"cohorts": []}
    table = cohort_table(tx, "month").filter(pl.col("period_index") <= COHORT_PERIODS)
    latest = sorted(set(table["cohort"].to_list()))[-COHORT_LIMIT:]
    table = table.filter(pl.col("cohort").is_in(latest)).select(
        "cohort", "period_index", "cohort_size", "active", "retention"
    )
    return {"cohorts": _rows(table)}


def clv(tx: Transactions, as_of: dt.date) -> dict[str, Any]:
    """CLV and P(alive) per segment (BG/NBD + Gamma-Gamma), and the valuable members at risk
    (segments in AT_RISK_SEGMENTS, by CLV, then money spent)."""
    if tx.frame.height == 0:
        return {"clv_segments": [], "at_risk": [], "clv_error": None}
    scores = rfm_scores(tx, as_of)
    error: str | None = None
    try:
        res = fit_clv(
            summarise(tx, observation_end=as_of, unit=CLV_UNIT),
            unit=CLV_UNIT,
            horizon_days=CLV_HORIZON_DAYS,
        )
        per = res.customers.select("customer_id", "probability_alive", "clv")
    except AnalyticsError as exc:  # e.g. too few repeat buyers to fit the models
        error = str(exc)
        per = pl.DataFrame(
            {"customer_id": scores["customer_id"]},
        ).with_columns(
            pl.lit(None, dtype=pl.Float64).alias("probability_alive"),
            pl.lit(None, dtype=pl.Float64).alias("clv"),
        )
    # A model may give no finite value for a few members (NaN): they count as unknown.
    joined = scores.join(per, on="customer_id", how="left").with_columns(
        pl.col("clv").fill_nan(None), pl.col("probability_alive").fill_nan(None)
    )
    unknown = int(joined["clv"].null_count())
    if unknown and error is None:
        error = f"CLV is not finite for {unknown} of {joined.height} members"
    by_segment = (
        joined.group_by("segment")
        .agg(
            pl.len().alias("customers"),
            pl.col("clv").mean().alias("mean_clv"),
            pl.col("clv").sum().alias("total_clv"),
            pl.col("probability_alive").mean().alias("mean_probability_alive"),
        )
        .join(
            pl.DataFrame({"segment": list(SEGMENTS), "_o": list(range(len(SEGMENTS)))}),
            on="segment",
            how="left",
        )
        .sort("_o")
        .drop("_o")
    )
    risky = (
        joined.filter(pl.col("segment").is_in(list(AT_RISK_SEGMENTS)))
        .sort(["clv", "monetary"], descending=True, nulls_last=True)
        .head(AT_RISK_LIMIT)
        .select(
            pl.col("customer_id").cast(pl.Int64).alias("member_id"),
            "segment",
            "recency_days",
            "frequency",
            "monetary",
            "probability_alive",
            "clv",
        )
    )
    return {"clv_segments": _rows(by_segment), "at_risk": _rows(risky), "clv_error": error}


def segment_names() -> dict[str, str]:
    """Segment names in Chinese, keyed by the analytics package's English names."""
    return {s: SEGMENT_NAMES_ZH.get(s, s) for s in (*SEGMENTS, NOT_ACQUIRED)}


def economics(
    tx: Transactions, pts: dict[str, Any], holdout: dict[int, bool] | None
) -> dict[str, Any]:
    """Rates, cost, incrementality against the holdout and ROI (``insights.economics``)."""
    cost = ProgrammeCost(
        points_earned=pts["earned"],
        points_redeemed=pts["redeemed"],
        points_expired=pts["expired"],
        value_minor_per_100_points=pts["value_minor_per_100_points"],
        coupons_minor=pts["coupons_minor"],
        compensation_minor=(pts["compensation_points"] * pts["value_minor_per_100_points"] + 50)
        // 100,
    )
    out: dict[str, Any] = {
        **pts,
        "redemption_rate": _num(cost.redemption_rate),
        "breakage_rate": _num(cost.breakage_rate),
        "points_cost_minor": cost.points_cost_minor,
        "cost_minor": cost.cost_minor,
        "incrementality": None,
        "roi": None,
        "incrementality_error": None,
    }
    if holdout is None:
        out["incrementality_error"] = "no holdout"
        return out
    try:
        e = holdout_effect(
            tx, holdout, dt.date.fromisoformat(pts["from"]), dt.date.fromisoformat(pts["to"])
        )
    except AnalyticsError as exc:
        out["incrementality_error"] = str(exc)
        return out
    # analytics works in yuan; the console's money is in fen
    incremental_minor = e.estimate * 100 * e.treated
    money = ("estimate", "se", "ci_low", "ci_high", "naive")
    out["incrementality"] = {
        k: _num(float(v) * 100 if k in money and isinstance(v, float) else v)
        for k, v in e.as_dict().items()
    }
    out["incremental_revenue_minor"] = _num(incremental_minor)
    out["roi"] = _num(cost.roi(incremental_minor))
    return out


def _effect_out(e: Any, money: bool) -> dict[str, Any]:
    keys = ("estimate", "se", "ci_low", "ci_high", "naive")
    scale = 100.0 if money else 1.0  # analytics works in yuan; the console in fen
    return {
        k: _num(float(v) * scale if k in keys and isinstance(v, float) else v)
        for k, v in e.as_dict().items()
    }


def pass_economics(
    tx: Transactions, pts: dict[str, Any], passes: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The pass ROI section: holders' spend and retention against matched non-holders
    (``analytics.economics.pass_effect``) and the pass's ROI (``PassEconomics``)."""
    if passes is None:
        return None
    out: dict[str, Any] = {
        "method": HOLDERS_MATCHING,
        "fees_minor": passes["fees_minor"],
        "points": passes["points"],
        "holders": sum(1 for h in passes["holders"].values() if h),
        "spend": None,
        "retention": None,
        "roi": None,
        "error": None,
    }
    try:
        e = pass_effect(
            tx,
            passes["holders"],
            dt.date.fromisoformat(pts["from"]),
            dt.date.fromisoformat(pts["to"]),
        )
    except AnalyticsError as exc:
        out["error"] = str(exc)
        return out
    money = PassEconomics(
        fees_minor=passes["fees_minor"],
        points=passes["points"],
        value_minor_per_100_points=pts["value_minor_per_100_points"],
        incremental_revenue_minor=e.spend.estimate * 100 * e.spend.treated,
    )
    out["spend"] = _effect_out(e.spend, money=True)
    out["retention"] = _effect_out(e.retention, money=False) if e.retention else None
    out["points_cost_minor"] = money.points_cost_minor
    out["incremental_revenue_minor"] = _num(money.incremental_revenue_minor)
    out["roi"] = _num(money.roi)
    return out


def member_rfm(tx: Transactions, as_of: dt.date) -> tuple[list[dict[str, Any]], str | None]:
    """Each member's RFM at ``as_of`` (quintile scores 1..5, segment) and P(alive) from a
    BG/NBD fitted on the same orders (weekly unit), for the nightly ``member_rfm`` table.

    Rows: member_id, recency_days, frequency, monetary_minor (fen), r_score, f_score,
    m_score, segment, p_alive (None when the model cannot be fitted or gives no finite
    value). The second value is the fitting error, if any.
    """
    if tx.frame.height == 0:
        return [], None
    scores = rfm_scores(tx, as_of)
    error: str | None = None
    alive: dict[str, float | None] = {}
    try:
        summary = summarise(tx, observation_end=as_of, unit=CLV_UNIT)
        x = summary["frequency"].to_numpy().astype("float64")
        t_x = summary["recency"].to_numpy().astype("float64")
        big_t = summary["T"].to_numpy().astype("float64")
        p = BGNBD.fit(x, t_x, big_t).probability_alive(x, t_x, big_t)
        for cid, v in zip(summary["customer_id"].to_list(), p.tolist(), strict=True):
            alive[str(cid)] = float(v) if math.isfinite(v) else None
    except AnalyticsError as exc:  # e.g. too few repeat buyers to fit the model
        error = str(exc)
    rows: list[dict[str, Any]] = []
    for r in scores.iter_rows(named=True):
        cid = str(r["customer_id"])
        rows.append(
            {
                "member_id": int(cid),
                "recency_days": int(r["recency_days"]),
                "frequency": int(r["frequency"]),
                "monetary_minor": round(float(r["monetary"]) * 100),
                "r_score": int(r["r_score"]),
                "f_score": int(r["f_score"]),
                "m_score": int(r["m_score"]),
                "segment": str(r["segment"]),
                "p_alive": alive.get(cid),
            }
        )
    return rows, error
