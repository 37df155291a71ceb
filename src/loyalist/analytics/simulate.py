"""Simulated customer bases (BG/NBD, Pareto/NBD and Gamma-Gamma processes).

Used by the property tests and the benchmark, and handy for trying the models out.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from loyalist.analytics._typing import FloatArray
from loyalist.analytics.io import LoadReport, Transactions


def _observation(n: int, big_t: float | FloatArray, rng: np.random.Generator) -> FloatArray:
    if isinstance(big_t, np.ndarray):
        return np.asarray(big_t, dtype=np.float64)
    return np.full(n, float(big_t))


def simulate_bgnbd(
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | FloatArray,
    *,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(x, t_x, T) for ``n`` customers drawn from the BG/NBD process.

    A customer with rate ``lambda`` and dropout probability ``p`` makes Poisson purchases and
    leaves after each with probability ``p``: of the N purchases in (0, T] only the first J
    (J ~ Geometric(p)) happen.  Given N, purchase times are uniform order statistics, so
    the x-th is T * Beta(x, N - x + 1).
    """
    rng = np.random.default_rng(seed)
    big = _observation(n, T, rng)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    n_events = rng.poisson(lam * big)
    alive_for = rng.geometric(np.clip(p, 1e-12, 1.0))  # purchases until (and incl.) dropout
    x = np.minimum(n_events, alive_for)
    t_x = np.zeros(n)
    pos = x > 0
    t_x[pos] = big[pos] * rng.beta(x[pos], n_events[pos] - x[pos] + 1)
    return x.astype(np.float64), t_x, big


def simulate_paretonbd(
    n: int,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    T: float | FloatArray,
    *,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(x, t_x, T) for ``n`` customers drawn from the Pareto/NBD process."""
    rng = np.random.default_rng(seed)
    big = _observation(n, T, rng)
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    life = rng.exponential(1.0 / mu)
    window = np.minimum(life, big)
    x = rng.poisson(lam * window)
    t_x = np.zeros(n)
    pos = x > 0
    t_x[pos] = window[pos] * rng.beta(x[pos], 1.0)
    return x.astype(np.float64), t_x, big


def simulate_gamma_gamma(
    frequency: FloatArray, p: float, q: float, gamma: float, *, seed: int = 0
) -> FloatArray:
    """Mean transaction value of each customer's ``frequency`` transactions (0 if none)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(frequency, dtype=np.float64)
    nu = np.asarray(rng.gamma(q, 1.0 / gamma, size=x.shape[0]), dtype=np.float64)
    out = np.zeros_like(x)
    pos = x > 0
    scale = 1.0 / nu[pos]
    out[pos] = rng.gamma(p * x[pos], scale) / x[pos]
    return out


def simulate_transactions(
    n_customers: int,
    *,
    start: dt.date = dt.date(2023, 1, 1),
    days: int = 730,
    acquisition_days: int = 365,
    bgnbd: tuple[float, float, float, float] = (0.8, 40.0, 0.8, 4.0),
    gamma_gamma: tuple[float, float, float] = (6.0, 4.0, 150.0),
    member_share: float = 0.6,
    seed: int = 0,
) -> Transactions:
    """A transactions table (time unit: days) with stores, channels and a member flag.

    Customers are acquired uniformly over the first ``acquisition_days`` days and then buy
    per the BG/NBD process (rate per day) with Gamma-Gamma spend; members buy a little more
    often, so member-vs-non-member comparisons show a difference.
    """
    rng = np.random.default_rng(seed)
    r, alpha, a, b = bgnbd
    p, q, g = gamma_gamma
    n = n_customers
    first = rng.integers(0, acquisition_days, n)
    big = (days - 1 - first).astype(np.float64)
    member = rng.random(n) < member_share
    lam = rng.gamma(r, 1.0 / alpha, n) * np.where(member, 1.3, 1.0)
    drop = rng.beta(a, b, n)
    n_events = rng.poisson(lam * big)
    alive_for = rng.geometric(np.clip(drop, 1e-12, 1.0))
    x = np.minimum(n_events, alive_for)
    nu = rng.gamma(q, 1.0 / g, n)
    # Row layout: each customer's first purchase, then their x repeat purchases.  Given N
    # events in (0, T], the x-th is at T * Beta(x, N - x + 1) and the x - 1 before it are
    # uniform on (0, t_x).
    t_last = np.zeros(n)
    pos = x > 0
    t_last[pos] = big[pos] * rng.beta(x[pos], n_events[pos] - x[pos] + 1)
    cust = np.repeat(np.arange(n), x + 1)
    starts = np.concatenate(([0], np.cumsum(x + 1)[:-1]))
    position = np.arange(cust.shape[0]) - starts[cust]  # 0 = first purchase
    offsets = np.where(position == x[cust], t_last[cust], rng.random(cust.shape[0]) * t_last[cust])
    offsets[position == 0] = 0.0
    day = first[cust] + np.ceil(offsets).astype(np.int64)
    day = np.minimum(day, days - 1)
    amount = np.maximum(np.round(rng.gamma(p, 1.0 / nu[cust]) * 100.0) / 100.0, 0.01)
    seconds = rng.integers(8 * 3600, 22 * 3600, cust.shape[0])
    base = dt.datetime.combine(start, dt.time())
    stores = ["SH-001", "SH-002", "BJ-001", "GZ-001", "CD-001"]
    channels = ["store", "app", "mini_program", "web"]
    micros = (day * 86_400 + seconds) * 1_000_000
    m = cust.shape[0]
    frame = (
        pl.DataFrame(
            {
                "_cust": cust,
                "_micros": micros,
                "amount": amount,
                "_row": np.arange(m),
                "_store": rng.integers(0, len(stores), m).astype(np.uint32),
                "_channel": rng.integers(0, len(channels), m).astype(np.uint32),
                "is_member": member[cust],
            }
        )
        .select(
            pl.format("C{}", pl.col("_cust")).alias("customer_id"),
            (pl.lit(base) + pl.duration(microseconds=pl.col("_micros"))).alias("occurred_at"),
            "amount",
            pl.format("O{}", pl.col("_row")).alias("order_id"),
            pl.col("_store").replace_strict(list(range(len(stores))), stores).alias("store"),
            pl.col("_channel")
            .replace_strict(list(range(len(channels))), channels)
            .alias("channel"),
            "is_member",
        )
        .sort("occurred_at")
    )
    report = LoadReport(
        source=f"simulated ({n_customers} customers, seed {seed})",
        rows_read=frame.height,
        rows_used=frame.height,
    )
    return Transactions(frame=frame, report=report)
