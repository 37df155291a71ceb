"""Acquisition cohorts: retention and revenue by months (or weeks) since first purchase.

A customer's cohort is the calendar month (ISO week) of their first purchase.  Period 0 is
that month; period k the k-th month after it.  ``retention`` in period k is the share of
the cohort that bought at least once in that period (period 0 is 1 by definition).

Revenue sums are exact: each cell's revenue is the correctly rounded sum of its amounts
(:mod:`loyalist.analytics.exact`), which does not depend on the order of the terms, so the
Spark engine, which adds in partitions, gives the very same cells.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from loyalist.analytics import exact
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import Transactions

Granularity = Literal["month", "week"]


def _period(col: pl.Expr, granularity: Granularity) -> pl.Expr:
    return col.dt.truncate("1mo" if granularity == "month" else "1w").dt.date()


def _index(period: pl.Expr, cohort: pl.Expr, granularity: Granularity) -> pl.Expr:
    if granularity == "month":
        return (period.dt.year() - cohort.dt.year()) * 12 + period.dt.month() - cohort.dt.month()
    return (period - cohort).dt.total_days() // 7


def cohort_table(tx: Transactions, granularity: Granularity = "month") -> pl.DataFrame:
    """One row per (cohort, period): cohort_size, active, retention, orders, revenue,
    revenue_per_customer (revenue over the cohort size) and cumulative_revenue_per_customer.

    Every period from 0 to the last period of the data is present for every cohort (periods
    in which nobody bought have ``active`` 0); periods after the data end are absent.
    """
    if granularity not in ("month", "week"):
        raise InputError("cohort granularity must be 'month' or 'week'")
    if tx.frame.height == 0:
        raise InputError("no transactions")
    f = tx.frame.lazy().select(
        "customer_id", _period(pl.col("occurred_at"), granularity).alias("period"), "amount"
    )
    first = f.group_by("customer_id").agg(pl.col("period").min().alias("cohort"))
    last_period = f.select(pl.col("period").max()).collect().item()
    rows = (
        f.join(first, on="customer_id")
        .with_columns(
            _index(pl.col("period"), pl.col("cohort"), granularity)
            .cast(pl.Int32)
            .alias("period_index")
        )
        .collect()
    )
    revenue = exact.group_sums(rows, "amount", ("cohort", "period_index"), alias="revenue")
    per = (
        rows.lazy()
        .group_by("cohort", "period_index")
        .agg(
            pl.col("customer_id").n_unique().alias("active"),
            pl.len().alias("orders"),
        )
        .join(revenue.lazy(), on=["cohort", "period_index"], how="left")
    )
    sizes = first.group_by("cohort").agg(pl.len().alias("cohort_size"))
    grid = (
        sizes.with_columns(
            pl.int_ranges(
                0,
                _index(pl.lit(last_period), pl.col("cohort"), granularity).cast(pl.Int32) + 1,
                dtype=pl.Int32,
            ).alias("period_index")
        )
        .explode("period_index")
        .join(per, on=["cohort", "period_index"], how="left")
        .with_columns(
            pl.col("active").fill_null(0).cast(pl.UInt32),
            pl.col("orders").fill_null(0).cast(pl.UInt32),
            pl.col("revenue").fill_null(0.0),
        )
    )
    out = (
        grid.with_columns(
            (pl.col("active") / pl.col("cohort_size")).alias("retention"),
            (pl.col("revenue") / pl.col("cohort_size")).alias("revenue_per_customer"),
        )
        .sort("cohort", "period_index")
        .with_columns(
            pl.col("revenue_per_customer")
            .cum_sum()
            .over("cohort")
            .alias("cumulative_revenue_per_customer")
        )
        .select(
            "cohort",
            "period_index",
            "cohort_size",
            "active",
            "retention",
            "orders",
            "revenue",
            "revenue_per_customer",
            "cumulative_revenue_per_customer",
        )
        .collect()
    )
    return out


def retention_matrix(
    table: pl.DataFrame, max_periods: int = 12, value: str = "retention"
) -> pl.DataFrame:
    """Wide form: one row per cohort, columns ``0 .. max_periods`` of ``value`` (retention,
    or another column of :func:`cohort_table` such as cumulative_revenue_per_customer)."""
    t = table.filter(pl.col("period_index") <= max_periods)
    wide = t.pivot(on="period_index", index=["cohort", "cohort_size"], values=value)
    cols = [c for c in wide.columns if c not in ("cohort", "cohort_size")]
    cols.sort(key=int)
    return wide.select("cohort", "cohort_size", *cols).sort("cohort")
