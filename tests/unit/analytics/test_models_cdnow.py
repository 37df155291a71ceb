"""Published CDNOW results, reproduced from the raw transactions file.

References: Fader, Hardie & Lee (2005) "Counting your customers the easy way" (BG/NBD);
Fader & Hardie (2013) "The Gamma-Gamma model of monetary value"; Fader & Hardie (2005)
"A note on deriving the Pareto/NBD model and related expressions".
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from loyalist.analytics.models import BGNBD, GammaGamma, ParetoNBD


def test_calibration_summary_matches_the_published_data(cdnow_calibration: pl.DataFrame) -> None:
    # given the raw sample, when summarised over 39 weeks, then 2,357 customers of whom
    # 946 made a repeat purchase, and customer 0001 has x = 2, t_x = 30.43, T = 38.86
    s = cdnow_calibration
    assert s.height == 2357
    assert int((s["frequency"] > 0).sum()) == 946
    first = s.filter(pl.col("customer_id") == "0001").row(0, named=True)
    assert first["frequency"] == 2
    assert first["recency"] == pytest.approx(30.43, abs=0.005)
    assert first["T"] == pytest.approx(38.86, abs=0.005)


@pytest.fixture(scope="module")
def bgnbd(cdnow_calibration: pl.DataFrame) -> BGNBD:
    s = cdnow_calibration
    return BGNBD.fit(s["frequency"], s["recency"], s["T"])


def test_bgnbd_reproduces_fader_hardie_lee_2005(bgnbd: BGNBD) -> None:
    fit = bgnbd.fit_result
    assert fit is not None and fit.converged, fit
    assert bgnbd.r == pytest.approx(0.243, abs=5e-4)
    assert bgnbd.alpha == pytest.approx(4.414, abs=5e-4)
    assert bgnbd.a == pytest.approx(0.793, abs=5e-4)
    assert bgnbd.b == pytest.approx(2.426, abs=5e-4)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert fit.n_customers == 2357
    assert fit.n_unique_rows < 2357  # identical (x, t_x, T) rows were compressed
    for name in ("r", "alpha", "a", "b"):
        se = fit.standard_errors[name]
        assert math.isfinite(se) and 0 < se < getattr(bgnbd, name)


def test_bgnbd_conditional_expectation_for_the_published_customer(bgnbd: BGNBD) -> None:
    value = bgnbd.conditional_expected_purchases(39, 2, 30.43, 38.86)
    assert float(value[0]) == pytest.approx(1.226, abs=5e-4)


def test_bgnbd_log_likelihood_per_customer_sums_to_the_fit(
    bgnbd: BGNBD, cdnow_calibration: pl.DataFrame
) -> None:
    s = cdnow_calibration
    per = bgnbd.log_likelihood(s["frequency"], s["recency"], s["T"])
    assert bgnbd.fit_result is not None
    assert float(per.sum()) == pytest.approx(bgnbd.fit_result.log_likelihood, rel=1e-10)


def test_gamma_gamma_reproduces_fader_hardie_2013(cdnow_calibration: pl.DataFrame) -> None:
    s = cdnow_calibration
    gg = GammaGamma.fit(s["frequency"], s["monetary_value"])
    assert gg.fit_result is not None and gg.fit_result.converged
    assert gg.fit_result.n_customers == 946
    assert gg.p == pytest.approx(6.25, abs=5e-3)
    assert gg.q == pytest.approx(3.74, abs=5e-3)
    assert gg.gamma == pytest.approx(15.44, abs=5e-3)
    per = gg.log_likelihood(
        *(
            np.asarray(c)[s["frequency"].to_numpy() > 0]
            for c in (s["frequency"], s["monetary_value"])
        )
    )
    assert float(per.sum()) == pytest.approx(gg.fit_result.log_likelihood, rel=1e-10)


def test_pareto_nbd_reproduces_fader_hardie_2005_note(cdnow_calibration: pl.DataFrame) -> None:
    # published: r = 0.5533, alpha = 10.5776, s = 0.6061, beta = 11.6650, LL = -9594.98
    s = cdnow_calibration
    m = ParetoNBD.fit(s["frequency"], s["recency"], s["T"])
    fit = m.fit_result
    assert fit is not None and fit.converged, fit
    assert m.r == pytest.approx(0.5533, abs=1e-3)
    assert m.alpha == pytest.approx(10.5776, abs=0.01)
    assert m.s == pytest.approx(0.6061, abs=2e-3)
    assert m.beta == pytest.approx(11.6650, abs=0.05)
    assert fit.log_likelihood == pytest.approx(-9594.98, abs=0.01)
    per = m.log_likelihood(s["frequency"], s["recency"], s["T"])
    assert float(per.sum()) == pytest.approx(fit.log_likelihood, rel=1e-10)
    # Pareto/NBD fits CDNOW slightly worse than BG/NBD (-9594.98 vs -9582.43)
    assert fit.log_likelihood < -9582.4
