"""Per-customer calibration summary: frequency, recency, T, monetary value.

Standard definitions (as in the BG/NBD, Pareto/NBD and Gamma-Gamma literature):

* purchases are counted per calendar day (several orders on one day are one purchase,
  their amounts summed);
* ``frequency`` is the number of *repeat* purchase days (the first purchase day excluded);
* ``recency`` is the time from the first to the last purchase day (0 without repeats);
* ``T`` is the time from the first purchase day to the end of observation;
* ``monetary_value`` is the mean amount of the repeat purchase days (0 without repeats).

Times are in ``unit`` (days, weeks or months of 365.25/12 days).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions

UNITS: dict[str, float] = {
    "D": 1.0,
    "day": 1.0,
    "days": 1.0,
    "W": 7.0,
    "week": 7.0,
    "weeks": 7.0,
    "M": 365.25 / 12.0,
    "month": 365.25 / 12.0,
    "months": 365.25 / 12.0,
}

DateLike = dt.date | dt.datetime | str


def unit_days(unit: str | float) -> float:
    if isinstance(unit, int | float):
        if unit <= 0:
            raise InputError("time unit must be positive")
        return float(unit)
    try:
        return UNITS[unit]
    except KeyError:
        raise InputError(f"unknown time unit {unit!r}; use one of D, W, M") from None


def to_date(value: DateLike, name: str = "date") -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise InputError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def last_date(tx: Transactions) -> dt.date:
    if tx.frame.height == 0:
        raise InputError("no transactions")
    value = tx.frame["occurred_at"].max()
    assert isinstance(value, dt.datetime)
    return value.date()


def first_date(tx: Transactions) -> dt.date:
    if tx.frame.height == 0:
        raise InputError("no transactions")
    value = tx.frame["occurred_at"].min()
    assert isinstance(value, dt.datetime)
    return value.date()


def _daily(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select(
        "customer_id",
        pl.col("occurred_at").dt.date().alias("day"),
        "amount",
    )


def summarise(
    tx: Transactions,
    *,
    observation_end: DateLike | None = None,
    unit: str | float = "W",
) -> pl.DataFrame:
    """The calibration summary of every customer whose first purchase is on or before
    ``observation_end`` (default: the last transaction day).  Purchases after it are ignored.

    Columns: customer_id, frequency, recency, T, monetary_value, first_purchase,
    last_purchase, orders, revenue.
    """
    end = to_date(observation_end, "observation_end") if observation_end else last_date(tx)
    days = unit_days(unit)
    lf = _daily(tx.frame.lazy()).filter(pl.col("day") <= end)
    agg = lf.group_by("customer_id").agg(
        pl.col("day").min().alias("first_purchase"),
        pl.col("day").max().alias("last_purchase"),
        pl.col("day").n_unique().alias("_days"),
        pl.len().alias("orders"),
        pl.col("amount").sum().alias("revenue"),
        pl.col("amount").filter(pl.col("day") == pl.col("day").min()).sum().alias("_first_amount"),
    )
    freq = (pl.col("_days") - 1).cast(pl.Int64)
    out = agg.with_columns(frequency=freq).select(
        "customer_id",
        pl.col("frequency"),
        ((pl.col("last_purchase") - pl.col("first_purchase")).dt.total_days() / days).alias(
            "recency"
        ),
        ((pl.lit(end) - pl.col("first_purchase")).dt.total_days() / days).alias("T"),
        pl.when(pl.col("frequency") > 0)
        .then((pl.col("revenue") - pl.col("_first_amount")) / pl.col("frequency"))
        .otherwise(0.0)
        .alias("monetary_value"),
        "first_purchase",
        "last_purchase",
        "orders",
        "revenue",
    )
    return out.sort("customer_id").collect()


def calibration_holdout(
    tx: Transactions,
    *,
    calibration_end: DateLike,
    holdout_end: DateLike | None = None,
    unit: str | float = "W",
) -> pl.DataFrame:
    """Calibration summary up to ``calibration_end`` plus what each customer did afterwards
    up to ``holdout_end``: ``frequency_holdout`` (purchase days), ``monetary_value_holdout``
    (mean amount per purchase day) and ``duration_holdout`` (length of the holdout, in
    ``unit``).  Only customers acquired in the calibration period are included.
    """
    cal_end = to_date(calibration_end, "calibration_end")
    hold_end = to_date(holdout_end, "holdout_end") if holdout_end else last_date(tx)
    if hold_end <= cal_end:
        raise InputError("holdout_end must be after calibration_end")
    days = unit_days(unit)
    cal = summarise(tx, observation_end=cal_end, unit=unit)
    hold = (
        _daily(tx.frame.lazy())
        .filter((pl.col("day") > cal_end) & (pl.col("day") <= hold_end))
        .group_by("customer_id", "day")
        .agg(pl.col("amount").sum())
        .group_by("customer_id")
        .agg(
            pl.len().alias("frequency_holdout"),
            pl.col("amount").mean().alias("monetary_value_holdout"),
        )
        .collect()
    )
    out = cal.join(hold, on="customer_id", how="left").with_columns(
        pl.col("frequency_holdout").fill_null(0).cast(pl.Int64),
        pl.col("monetary_value_holdout").fill_null(0.0),
        pl.lit((hold_end - cal_end).days / days).alias("duration_holdout"),
    )
    return out
