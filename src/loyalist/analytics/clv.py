"""Customer lifetime value: purchase model + spend model + discounting.

    CLV_i = margin * E[M_i] * sum_{k=1..H} (E[Y_i(k d)] - E[Y_i((k-1) d)]) / (1 + rate)^k

where ``E[Y_i(t)]`` is the purchase model's conditional expected number of repeat purchases
in the next ``t`` time units, ``d`` the length of one discounting period in those units,
``rate`` the discount rate per period and ``E[M_i]`` the Gamma-Gamma expected spend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from loyalist.analytics._typing import FloatArray, IntArray
from loyalist.analytics.errors import InputError
from loyalist.analytics.models import BGNBD, GammaGamma, ParetoNBD
from loyalist.analytics.models._base import row_hash
from loyalist.analytics.summary import unit_days

PurchaseModel = BGNBD | ParetoNBD
ModelName = Literal["bgnbd", "paretonbd"]


def discounted_value(
    model: PurchaseModel,
    expected_spend: FloatArray,
    frequency: FloatArray,
    recency: FloatArray,
    T: FloatArray,
    *,
    periods: int,
    period_length: float,
    discount_rate: float,
    margin: float,
) -> FloatArray:
    """Discounted margin over ``periods`` periods of ``period_length`` model time units."""
    if periods < 1:
        raise InputError("the CLV horizon must be at least one period")
    if discount_rate < 0 or not math.isfinite(discount_rate):
        raise InputError("the discount rate must be >= 0")
    x, t_x, big_t, inverse = _distinct_customers(frequency, recency, T)
    total = np.zeros_like(x)
    previous = np.zeros_like(total)
    for k in range(1, periods + 1):
        cumulative = model.conditional_expected_purchases(k * period_length, x, t_x, big_t)
        total += (cumulative - previous) / (1.0 + discount_rate) ** k
        previous = cumulative
    return np.asarray(margin * expected_spend * total[inverse], dtype=np.float64)


def _distinct_customers(
    frequency: FloatArray, recency: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """The distinct (x, t_x, T) rows and, per customer, the index of theirs: predictions
    depend on nothing else, and real data repeat them a lot."""
    cols = [np.ascontiguousarray(c, dtype=np.float64) + 0.0 for c in (frequency, recency, T)]
    if cols[0].size == 0:
        return cols[0], cols[1], cols[2], np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(row_hash(cols), return_index=True, return_inverse=True)
    if any(np.any(c[first][inverse] != c) for c in cols):  # a hash collision: no grouping
        return cols[0], cols[1], cols[2], np.arange(cols[0].shape[0], dtype=np.int64)
    return cols[0][first], cols[1][first], cols[2][first], inverse.astype(np.int64)


@dataclass(frozen=True)
class CLVResult:
    """Fitted models and one row per customer."""

    purchase_model: PurchaseModel
    spend_model: GammaGamma
    customers: pl.DataFrame
    unit: str | float
    horizon_days: float
    discount_rate_annual: float
    margin: float

    def to_dict(self) -> dict[str, object]:
        c = self.customers
        assert self.purchase_model.fit_result is not None
        assert self.spend_model.fit_result is not None
        return {
            "purchase_model": self.purchase_model.fit_result.to_dict(),
            "spend_model": self.spend_model.fit_result.to_dict(),
            "unit": self.unit,
            "horizon_days": self.horizon_days,
            "discount_rate_annual": self.discount_rate_annual,
            "margin": self.margin,
            "customers": c.height,
            "total_clv": float(c["clv"].sum()),
            "mean_clv": float(c["clv"].sum()) / max(c.height, 1),
            "mean_probability_alive": float(c["probability_alive"].sum()) / max(c.height, 1),
            "expected_purchases_total": float(c["expected_purchases"].sum()),
        }


def fit_clv(
    summary: pl.DataFrame,
    *,
    model: ModelName = "bgnbd",
    unit: str | float = "W",
    horizon_days: float = 365.0,
    discount_rate_annual: float = 0.10,
    margin: float = 1.0,
    period_days: float = 365.25 / 12.0,
) -> CLVResult:
    """Fit the purchase and spend models on a calibration summary and score every customer.

    ``summary`` comes from :func:`loyalist.analytics.summarise` with the same ``unit``.
    Discounting is monthly by default (``period_days``) at the equivalent of
    ``discount_rate_annual``.  Columns added: probability_alive, expected_purchases (over
    the horizon), expected_spend (per purchase), clv.
    """
    for col in ("frequency", "recency", "T", "monetary_value"):
        if col not in summary.columns:
            raise InputError(f"summary lacks column {col!r}")
    if not 0 < margin <= 1.0:
        raise InputError("margin must be in (0, 1]")
    x = summary["frequency"].to_numpy().astype(np.float64)
    t_x = summary["recency"].to_numpy().astype(np.float64)
    big_t = summary["T"].to_numpy().astype(np.float64)
    m = summary["monetary_value"].to_numpy().astype(np.float64)
    pm: PurchaseModel
    pm = ParetoNBD.fit(x, t_x, big_t) if model == "paretonbd" else BGNBD.fit(x, t_x, big_t)
    gg = GammaGamma.fit(x, m)
    days = unit_days(unit)
    periods = max(1, round(horizon_days / period_days))
    period_len = period_days / days
    rate = (1.0 + discount_rate_annual) ** (period_days / 365.25) - 1.0
    ux, ut_x, u_t, inverse = _distinct_customers(x, t_x, big_t)
    alive = pm.probability_alive(ux, ut_x, u_t)[inverse]
    expected = pm.conditional_expected_purchases(horizon_days / days, ux, ut_x, u_t)[inverse]
    spend = gg.conditional_expected_value(x, m)
    clv = discounted_value(
        pm,
        spend,
        x,
        t_x,
        big_t,
        periods=periods,
        period_length=period_len,
        discount_rate=rate,
        margin=margin,
    )
    customers = summary.with_columns(
        pl.Series("probability_alive", alive),
        pl.Series("expected_purchases", expected),
        pl.Series("expected_spend", spend),
        pl.Series("clv", clv),
    )
    return CLVResult(
        purchase_model=pm,
        spend_model=gg,
        customers=customers,
        unit=unit,
        horizon_days=horizon_days,
        discount_rate_annual=discount_rate_annual,
        margin=margin,
    )
