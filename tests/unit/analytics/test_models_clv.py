"""Discounted CLV from the fitted purchase and spend models."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from loyalist.analytics.clv import discounted_value, fit_clv
from loyalist.analytics.errors import InputError
from loyalist.analytics.models import BGNBD, GammaGamma


def test_clv_is_the_discounted_sum_of_expected_purchases_times_spend(
    cdnow_calibration: pl.DataFrame,
) -> None:
    s = cdnow_calibration
    res = fit_clv(
        s, model="bgnbd", unit="W", horizon_days=365, discount_rate_annual=0.10, margin=0.3
    )
    bg, gg = res.purchase_model, res.spend_model
    assert isinstance(bg, BGNBD) and isinstance(gg, GammaGamma)
    x, t_x, big_t, m = (
        s[c].to_numpy().astype(float) for c in ("frequency", "recency", "T", "monetary_value")
    )
    period = 365.25 / 12 / 7  # a month, in weeks
    monthly = 1.10 ** (1 / 12) - 1
    # by hand, customer by customer, for a few customers
    for i in (0, 1, 17, 500, 2356):
        spend = gg.conditional_expected_value(x[i], m[i])[0]
        total, prev = 0.0, 0.0
        for k in range(1, 13):
            cum = bg.conditional_expected_purchases(k * period, x[i], t_x[i], big_t[i])[0]
            total += (cum - prev) / (1 + monthly) ** k
            prev = cum
        assert res.customers["clv"][i] == pytest.approx(0.3 * spend * total, rel=1e-12)
        assert res.customers["probability_alive"][i] == pytest.approx(
            bg.probability_alive(x[i], t_x[i], big_t[i])[0], rel=1e-15
        )
    assert res.customers.height == s.height
    assert res.to_dict()["total_clv"] == pytest.approx(float(res.customers["clv"].sum()))


def test_one_undiscounted_period_is_margin_times_spend_times_purchases() -> None:
    bg = BGNBD(0.243, 4.414, 0.793, 2.426)
    x = np.array([0.0, 2.0, 2.0, 7.0])
    t_x = np.array([0.0, 30.43, 30.43, 35.0])
    big_t = np.array([38.86, 38.86, 38.86, 38.86])
    spend = np.array([35.0, 30.0, 40.0, 20.0])
    out = discounted_value(
        bg, spend, x, t_x, big_t, periods=1, period_length=39.0, discount_rate=0.0, margin=0.5
    )
    expected = 0.5 * spend * bg.conditional_expected_purchases(39.0, x, t_x, big_t)
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    assert out[1] == pytest.approx(0.5 * 30.0 * 1.2259, rel=1e-3)
    with pytest.raises(InputError):
        discounted_value(
            bg, spend, x, t_x, big_t, periods=0, period_length=1.0, discount_rate=0.1, margin=1.0
        )
