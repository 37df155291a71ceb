"""Model properties on simulated data: recovery, probabilities, monotonicity, stability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalist.analytics.models import BGNBD, GammaGamma, ParetoNBD
from loyalist.analytics.models import bgnbd as bg_mod
from loyalist.analytics.models import paretonbd as pn_mod
from loyalist.analytics.models._base import compress
from loyalist.analytics.simulate import (
    simulate_bgnbd,
    simulate_gamma_gamma,
    simulate_paretonbd,
)

SLOW = settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
FAST = settings(max_examples=60, deadline=None, derandomize=True)

positive = st.floats(min_value=0.05, max_value=20.0, allow_nan=False)


def _observation_lengths(n: int, seed: int) -> np.ndarray:
    # customers acquired over a year, observed until week 78: T between 26 and 78 weeks
    return np.random.default_rng(seed).uniform(26.0, 78.0, n)


@SLOW
@given(
    r=st.floats(0.3, 2.0),
    alpha=st.floats(2.0, 15.0),
    a=st.floats(0.5, 2.0),
    b=st.floats(1.5, 6.0),
    seed=st.integers(0, 1000),
)
def test_bgnbd_recovers_parameters_from_a_large_simulated_population(
    r: float, alpha: float, a: float, b: float, seed: int
) -> None:
    n = 40_000
    x, t_x, big_t = simulate_bgnbd(n, r, alpha, a, b, _observation_lengths(n, seed), seed=seed)
    m = BGNBD.fit(x, t_x, big_t)
    assert m.fit_result is not None and m.fit_result.converged, m.fit_result
    # rates are well identified; dropout parameters less so (they share information)
    assert m.r / m.alpha == pytest.approx(r / alpha, rel=0.08)
    assert m.r == pytest.approx(r, rel=0.25)
    assert m.a / (m.a + m.b) == pytest.approx(a / (a + b), rel=0.25)
    # the truth should be inside roughly 4 standard errors for each parameter
    for name, truth in {"r": r, "alpha": alpha, "a": a, "b": b}.items():
        se = m.fit_result.standard_errors[name]
        assert abs(getattr(m, name) - truth) < 5 * se + 0.05 * truth, (name, se)


@SLOW
@given(
    r=st.floats(0.3, 1.5),
    alpha=st.floats(2.0, 15.0),
    s=st.floats(0.3, 1.5),
    beta=st.floats(5.0, 30.0),
    seed=st.integers(0, 1000),
)
def test_pareto_nbd_recovers_parameters(
    r: float, alpha: float, s: float, beta: float, seed: int
) -> None:
    n = 20_000
    x, t_x, big_t = simulate_paretonbd(
        n, r, alpha, s, beta, _observation_lengths(n, seed), seed=seed
    )
    m = ParetoNBD.fit(x, t_x, big_t)
    assert m.fit_result is not None and m.fit_result.converged, m.fit_result
    assert m.r / m.alpha == pytest.approx(r / alpha, rel=0.1)
    for name, truth in {"r": r, "alpha": alpha, "s": s, "beta": beta}.items():
        se = m.fit_result.standard_errors[name]
        assert abs(getattr(m, name) - truth) < 5 * se + 0.05 * truth, (name, se)


@SLOW
@given(
    p=st.floats(1.0, 10.0),
    q=st.floats(2.0, 8.0),
    gamma=st.floats(5.0, 200.0),
    seed=st.integers(0, 1000),
)
def test_gamma_gamma_recovers_parameters(p: float, q: float, gamma: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 12, 20_000).astype(np.float64)
    m_val = simulate_gamma_gamma(x, p, q, gamma, seed=seed)
    gg = GammaGamma.fit(x, m_val)
    assert gg.fit_result is not None and gg.fit_result.converged
    # the mean spend p * gamma / (q - 1) is the well-identified quantity
    assert gg.mean_transaction_value == pytest.approx(p * gamma / (q - 1), rel=0.06)
    for name, truth in {"p": p, "q": q, "gamma": gamma}.items():
        se = gg.fit_result.standard_errors[name]
        assert abs(getattr(gg, name) - truth) < 5 * se + 0.05 * truth, (name, se)


customer = st.tuples(st.integers(0, 300), st.floats(0.01, 1.0), st.floats(0.01, 500.0)).map(
    lambda c: (float(c[0]), c[1] * c[2] if c[0] > 0 else 0.0, c[2])
)


@FAST
@given(params=st.tuples(positive, positive, positive, positive), cust=customer)
def test_bgnbd_probability_alive_is_a_probability(
    params: tuple[float, float, float, float], cust: tuple[float, float, float]
) -> None:
    m = BGNBD(*params)
    x, t_x, big_t = cust
    p = m.probability_alive(x, t_x, big_t)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))


@FAST
@given(params=st.tuples(positive, positive, positive, positive), cust=customer)
def test_pareto_nbd_probability_alive_and_likelihood_are_finite(
    params: tuple[float, float, float, float], cust: tuple[float, float, float]
) -> None:
    m = ParetoNBD(*params)
    x, t_x, big_t = cust
    p = m.probability_alive(x, t_x, big_t)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    # a density in t_x: finite, but not necessarily below 1
    assert np.all(np.isfinite(m.log_likelihood(x, t_x, big_t)))


@FAST
@given(
    params=st.tuples(positive, positive, st.floats(1.05, 20.0), positive),
    cust=customer,
    t1=st.floats(0.1, 100.0),
    dt=st.floats(0.1, 100.0),
)
def test_expected_purchases_increase_with_the_horizon(
    params: tuple[float, float, float, float],
    cust: tuple[float, float, float],
    t1: float,
    dt: float,
) -> None:
    x, t_x, big_t = cust
    for m in (BGNBD(*params), ParetoNBD(*params)):
        e1 = float(m.conditional_expected_purchases(t1, x, t_x, big_t)[0])
        e2 = float(m.conditional_expected_purchases(t1 + dt, x, t_x, big_t)[0])
        assert math.isfinite(e1) and math.isfinite(e2)
        assert 0.0 <= e1 <= e2 * (1 + 1e-9) + 1e-12
        u1 = float(m.expected_purchases(t1)[0])
        u2 = float(m.expected_purchases(t1 + dt)[0])
        assert 0.0 <= u1 <= u2 * (1 + 1e-9) + 1e-12


def _finite_difference(f, point: np.ndarray, h: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.empty_like(point)
    for i in range(point.shape[0]):
        e = np.zeros_like(point)
        e[i] = h
        out[i] = (f(point + e)[0] - f(point - e)[0]) / (2 * h)
    return out


@pytest.mark.parametrize(
    "log_params",
    [np.log([0.24, 4.4, 0.79, 2.4]), np.log([3.0, 0.5, 5.0, 0.2]), np.log([0.05, 40.0, 0.1, 9.0])],
)
def test_bgnbd_analytic_gradient_matches_finite_differences(log_params: np.ndarray) -> None:
    x, t_x, big_t = simulate_bgnbd(3000, 0.5, 5.0, 0.8, 2.5, 52.0, seed=3)
    d = bg_mod._prepare(compress(x, t_x, big_t))
    _, grad = bg_mod._negloglik(log_params, d)
    num = _finite_difference(lambda p: bg_mod._negloglik(p, d), log_params)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "log_params",
    [
        np.log([0.55, 10.6, 0.6, 11.7]),  # alpha < beta branch
        np.log([0.55, 14.0, 0.6, 3.0]),  # alpha > beta branch
        np.log([2.0, 1.0, 0.2, 200.0]),  # z close to 1
    ],
)
def test_pareto_nbd_analytic_gradient_matches_finite_differences(log_params: np.ndarray) -> None:
    x, t_x, big_t = simulate_paretonbd(2000, 0.6, 8.0, 0.7, 12.0, 52.0, seed=4)
    d = pn_mod._prepare(compress(x, t_x, big_t))
    _, grad = pn_mod._negloglik(log_params, d)
    num = _finite_difference(lambda p: pn_mod._negloglik(p, d), log_params)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    ("r", "alpha", "s", "beta"),
    [
        (0.8, 6.0, 0.5, 20.0),  # alpha < beta branch of the series
        (0.8, 20.0, 0.5, 6.0),  # alpha > beta branch
        (0.3, 2.0, 1.0, 300.0),  # z close to 1, s a whole number
    ],
)
def test_pareto_nbd_likelihood_matches_numerical_integration(
    r: float, alpha: float, s: float, beta: float
) -> None:
    # The closed form against a direct quadrature of the integral it stands for.
    from scipy.integrate import quad
    from scipy.special import gammaln

    m = ParetoNBD(r, alpha, s, beta)
    for x, t_x, big_t in ((4.0, 20.0, 40.0), (0.0, 0.0, 52.0), (1.0, 0.5, 10.0)):

        def integrand(u: float, x: float = x) -> float:
            return float((alpha + u) ** -(r + x) * (beta + u) ** -(s + 1))

        integral = quad(integrand, t_x, big_t, epsabs=0, epsrel=1e-13, limit=200)[0]
        direct = (
            gammaln(r + x)
            - gammaln(r)
            + r * math.log(alpha)
            + s * math.log(beta)
            + math.log((alpha + big_t) ** -(r + x) * (beta + big_t) ** -s + s * integral)
        )
        assert float(m.log_likelihood(x, t_x, big_t)[0]) == pytest.approx(direct, abs=1e-10)


def test_heavy_buyers_do_not_overflow() -> None:
    x = np.array([0.0, 1.0, 50.0, 500.0, 5000.0])
    t_x = np.array([0.0, 1.0, 50.0, 51.0, 51.9])
    big_t = np.full(5, 52.0)
    for m in (BGNBD(0.24, 4.4, 0.79, 2.4), ParetoNBD(0.55, 10.6, 0.6, 11.7)):
        for values in (
            m.log_likelihood(x, t_x, big_t),
            m.probability_alive(x, t_x, big_t),
            m.conditional_expected_purchases(52.0, x, t_x, big_t),
        ):
            assert np.all(np.isfinite(values)), (type(m).__name__, values)


def test_compression_with_weights_equals_the_expanded_data() -> None:
    x, t_x, big_t = simulate_bgnbd(5000, 0.5, 5.0, 0.8, 2.5, 30.0, seed=8)
    # round to whole days so that many rows coincide
    t_x = np.round(t_x * 7) / 7
    full = BGNBD.fit(x, t_x, big_t)
    comp = compress(x, t_x, big_t)
    weighted = BGNBD.fit(*comp.columns, weights=comp.weights)
    assert full.fit_result is not None and weighted.fit_result is not None
    assert full.fit_result.n_unique_rows == comp.n_rows < 5000
    assert weighted.fit_result.log_likelihood == pytest.approx(
        full.fit_result.log_likelihood, rel=1e-9
    )
    assert weighted.r == pytest.approx(full.r, rel=1e-6)


def test_no_repeat_purchases_is_reported_not_raised() -> None:
    # With nobody buying again, the purchase rate runs to zero: the fit must say so.
    n = 200
    m = BGNBD.fit(np.zeros(n), np.zeros(n), np.full(n, 30.0))
    assert m.fit_result is not None
    assert not m.fit_result.converged
    assert m.fit_result.convergence.reason
    pn = ParetoNBD.fit(np.zeros(n), np.zeros(n), np.full(n, 30.0))
    assert pn.fit_result is not None and not pn.fit_result.converged


def test_invalid_summaries_name_the_rows() -> None:
    from loyalist.analytics.errors import InputError

    with pytest.raises(InputError, match=r"recency exceeds T \(rows 2;"):
        BGNBD.fit([1, 2, 0], [1.0, 9.0, 0.0], [5.0, 8.0, 3.0])
    with pytest.raises(InputError, match=r"frequency is negative \(rows 1;"):
        ParetoNBD.fit([-1, 2], [0.0, 1.0], [5.0, 8.0])
    with pytest.raises(InputError, match=r"positive mean transaction value \(rows 2;"):
        GammaGamma.fit([1, 2], [10.0, 0.0], exclude_nonpositive=False)


def test_gamma_gamma_leaves_out_and_counts_repeat_buyers_without_positive_value() -> None:
    x = np.array([1.0, 2.0, 3.0, 0.0, 2.0, 4.0, 1.0])
    m = np.array([10.0, 0.0, 12.0, 0.0, -5.0, 9.0, 30.0])
    gg = GammaGamma.fit(x, m)
    clean = GammaGamma.fit(x[[0, 2, 5, 6]], m[[0, 2, 5, 6]])
    assert gg.fit_result is not None and clean.fit_result is not None
    assert gg.fit_result.extra == {"excluded_nonpositive_value": 2.0}
    assert gg.fit_result.n_customers == 4
    assert gg.params == clean.params
    assert clean.fit_result.extra == {}


def test_compression_survives_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    from loyalist.analytics.models import _base

    x = np.array([1.0, 0.0, 1.0, 2.0, 0.0, -0.0])
    t_x = np.array([3.0, 0.0, 3.0, 4.0, 0.0, 0.0])
    big_t = np.array([5.0, 6.0, 5.0, 6.0, 6.0, 6.0])
    fast = _base.compress(x, t_x, big_t)
    monkeypatch.setattr(_base, "row_hash", lambda cols: np.zeros(cols[0].shape[0], np.uint64))
    exact = _base.compress(x, t_x, big_t)
    for comp in (fast, exact):
        rows = {
            tuple(float(c[i]) for c in comp.columns): float(comp.weights[i])
            for i in range(comp.n_rows)
        }
        assert rows == {(1.0, 3.0, 5.0): 2.0, (0.0, 0.0, 6.0): 3.0, (2.0, 4.0, 6.0): 1.0}
