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

import numpy as np
import polars as pl

from loyalist.analytics._typing import IntArray
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions
from loyalist.analytics.models._base import dictionary_codes, first_rows

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

_EPOCH = dt.date(1970, 1, 1)


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


def _customer_codes(ids: pl.Series) -> tuple[IntArray, IntArray]:
    """Dense integer codes of the customer ids (0, 1, ... in order of first appearance) and
    the row where each code first appears.

    Codes come from a 64-bit hash of each id, dictionary-encoded; a second, independently
    seeded hash that must agree with the one of the code's first row proves there was no
    collision (if there ever is one the ids themselves are encoded instead, more slowly).
    """
    h1 = ids.hash(seed=0).to_numpy()
    codes = dictionary_codes(h1)
    first_row = first_rows(codes)
    h2 = ids.hash(seed=1_234_567).to_numpy()
    if np.any(h2 != h2[first_row][codes]):
        codes = dictionary_codes(ids)
        first_row = first_rows(codes)
    return codes, first_row


def summarise(
    tx: Transactions,
    *,
    observation_end: DateLike | None = None,
    unit: str | float = "W",
) -> pl.DataFrame:
    """The calibration summary of every customer whose first purchase is on or before
    ``observation_end`` (default: the last transaction day).  Purchases after it are ignored.

    Columns: customer_id, frequency, recency, T, monetary_value, first_purchase,
    last_purchase, orders, revenue; one row per customer, in the order of each customer's
    first transaction in ``tx.frame``.

    The work is one pass of hashing and a handful of vectorised reductions over integer
    customer codes (no general group-by): about 0.3 s for 2.8 million rows on two cores.
    """
    end = to_date(observation_end, "observation_end") if observation_end else last_date(tx)
    days = unit_days(unit)
    end_day = (end - _EPOCH).days
    frame = tx.frame.select(
        "customer_id",
        pl.col("occurred_at").dt.date().cast(pl.Int32).alias("_day"),
        "amount",
    )
    day_all = frame["_day"].to_numpy()
    if day_all.size and int(day_all.max()) > end_day:
        frame = frame.filter(pl.col("_day") <= end_day)
    if frame.height == 0:
        raise InputError(f"no transactions on or before {end.isoformat()}")
    ids = frame["customer_id"]
    day = frame["_day"].to_numpy().astype(np.int64)
    amount = frame["amount"].to_numpy().astype(np.float64, copy=False)
    codes, first_row = _customer_codes(ids)
    n = first_row.shape[0]
    m = codes.shape[0]

    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, codes, day)
    np.maximum.at(last, codes, day)
    orders = np.bincount(codes, minlength=n)
    revenue = np.bincount(codes, weights=amount, minlength=n)
    on_first_day = day == first[codes]
    first_amount = np.bincount(codes[on_first_day], weights=amount[on_first_day], minlength=n)
    # purchase days per customer: distinct (customer, day) pairs, counted after one sort
    day0 = int(day.min())
    span = int(day.max()) - day0 + 1
    keys = codes * span + (day - day0)
    if n * span < 2**32:  # 32-bit keys sort faster
        keys = keys.astype(np.uint32)
    pairs = pl.Series(keys).sort().to_numpy()
    distinct = np.empty(m, dtype=np.bool_)
    distinct[0] = True
    np.not_equal(pairs[1:], pairs[:-1], out=distinct[1:])
    purchase_days = np.bincount(pairs[distinct] // span, minlength=n)

    frequency = purchase_days - 1
    repeat = frequency > 0
    monetary = np.zeros(n)
    monetary[repeat] = (revenue[repeat] - first_amount[repeat]) / frequency[repeat]
    out = pl.DataFrame(
        {
            "customer_id": ids.gather(first_row),
            "frequency": frequency.astype(np.int64),
            "recency": (last - first) / days,
            "T": (end_day - first) / days,
            "monetary_value": monetary,
            "first_purchase": pl.Series(first.astype(np.int32)).cast(pl.Date),
            "last_purchase": pl.Series(last.astype(np.int32)).cast(pl.Date),
            "orders": pl.Series(orders, dtype=pl.UInt32),
            "revenue": revenue,
        }
    )
    return out


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
