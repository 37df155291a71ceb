"""The experiment readout equals reference implementations (scipy) to 1e-9, and a 60/40
split of a 50/50 experiment is flagged as a sample-ratio mismatch."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from loyalist.journey import stats
from loyalist.journey.service import readout_from

TOL = 1e-9


def close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


def reference_proportions(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float]:
    """p-value from scipy's chi-square on the 2×2 table (equal to the pooled z-test's),
    CI from the unpooled normal approximation."""
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    p = sp.chi2_contingency(table, correction=False).pvalue
    p1, p2 = x1 / n1, x2 / n2
    se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = sp.norm.ppf(0.975)
    return float(p), float(p1 - p2 - z * se), float(p1 - p2 + z * se)


FIXTURE_A = [0, 0, 0, 1290, 0, 4590, 0, 0, 2200, 0, 0, 880, 0, 0, 0, 6100, 0, 0, 0, 1500]
FIXTURE_C = [0, 0, 990, 0, 0, 0, 0, 3400, 0, 0, 0, 0, 0, 0, 1200, 0, 0, 0, 0, 0, 0, 500]


def test_welch_equals_scipy_on_the_fixture() -> None:
    got = stats.welch([float(v) for v in FIXTURE_A], [float(v) for v in FIXTURE_C])
    ref = sp.ttest_ind(FIXTURE_A, FIXTURE_C, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert close(got.diff, np.mean(FIXTURE_A) - np.mean(FIXTURE_C))
    assert close(got.p_value, float(ref.pvalue))
    assert close(got.ci_low, float(ci.low)) and close(got.ci_high, float(ci.high))


@given(
    st.lists(st.integers(0, 100_000), min_size=2, max_size=60),
    st.lists(st.integers(0, 100_000), min_size=2, max_size=60),
)
@settings(max_examples=60, deadline=None)
def test_welch_equals_scipy(a: list[int], c: list[int]) -> None:
    got = stats.welch([float(v) for v in a], [float(v) for v in c])
    if np.var(a) == 0 and np.var(c) == 0:
        assert got.p_value is None
        return
    ref = sp.ttest_ind(a, c, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert close(got.p_value, float(ref.pvalue))
    assert close(got.ci_low, float(ci.low)) and close(got.ci_high, float(ci.high))


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(48, 400, 30, 410), (5, 50, 5, 50), (120, 1000, 80, 990)]
)
def test_two_proportions_equals_the_reference(x1: int, n1: int, x2: int, n2: int) -> None:
    got = stats.two_proportions(x1, n1, x2, n2)
    p, lo, hi = reference_proportions(x1, n1, x2, n2)
    assert close(got.diff, x1 / n1 - x2 / n2)
    assert close(got.p_value, p) and close(got.ci_low, lo) and close(got.ci_high, hi)


@given(st.integers(1, 500), st.integers(1, 500), st.data())
@settings(max_examples=60, deadline=None)
def test_two_proportions_equals_the_reference_everywhere(
    n1: int, n2: int, data: st.DataObject
) -> None:
    x1 = data.draw(st.integers(0, n1))
    x2 = data.draw(st.integers(0, n2))
    got = stats.two_proportions(x1, n1, x2, n2)
    if x1 + x2 in (0, n1 + n2):
        assert got.p_value is None  # no variation at all
        return
    p, lo, hi = reference_proportions(x1, n1, x2, n2)
    assert close(got.p_value, p) and close(got.ci_low, lo) and close(got.ci_high, hi)


def test_srm_equals_scipy_and_flags_a_60_40_split_of_a_50_50_experiment() -> None:
    ok = stats.srm([5030, 4970], [50, 50])
    assert ok is not None and not ok.flagged
    ref = sp.chisquare([5030, 4970], [5000, 5000])
    assert close(ok.chi2, float(ref.statistic)) and close(ok.p_value, float(ref.pvalue))
    bad = stats.srm([600, 400], [50, 50])
    assert bad is not None and bad.flagged
    ref = sp.chisquare([600, 400], [500, 500])
    assert close(bad.p_value, float(ref.pvalue)) and bad.p_value < 0.001
    three = stats.srm([210, 290, 500], [20, 30, 50])
    ref = sp.chisquare([210, 290, 500], [200, 300, 500])
    assert three is not None and close(three.p_value, float(ref.pvalue))


def test_readout_on_a_fixture_equals_the_formulas() -> None:
    """Assignments and orders → per-variant figures → the same statistics as scipy."""
    rng = random.Random(14)
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    window = timedelta(days=14)
    assigned: dict[str, list[tuple[int, datetime]]] = {"control": [], "offer": []}
    orders: list[tuple[int, datetime, int]] = []
    revenue: dict[str, list[float]] = {"control": [], "offer": []}
    for m in range(1, 401):
        name = "offer" if m % 5 in (1, 2) else "control"  # 160 / 240: a mismatch on 50/50
        at = t0 + timedelta(hours=m)
        assigned[name].append((m, at))
        paid = 0
        if rng.random() < (0.3 if name == "offer" else 0.2):
            amount = rng.randint(500, 20_000)
            orders.append((m, at + timedelta(days=rng.randint(0, 13)), amount))
            paid += amount
        orders.append((m, at + window + timedelta(seconds=1), 99_999))  # outside the window
        orders.append((m, at - timedelta(seconds=1), 77_777))  # before the assignment
        revenue[name].append(float(paid))
    groups, srm = readout_from(
        [("control", 50.0), ("offer", 50.0)], "control", assigned, orders, window
    )
    c, o = groups
    assert (c.members, o.members) == (240, 160)
    conv = {n: sum(1 for v in revenue[n] if v > 0) for n in revenue}
    assert (c.conversions, o.conversions) == (conv["control"], conv["offer"])
    assert o.revenue_minor == int(sum(revenue["offer"]))
    assert close(o.revenue_per_member, float(np.mean(revenue["offer"])))
    ref = sp.ttest_ind(revenue["offer"], revenue["control"], equal_var=False)
    assert o.revenue_vs_control is not None
    assert close(o.revenue_vs_control.p_value, float(ref.pvalue))
    p, lo, hi = reference_proportions(conv["offer"], 160, conv["control"], 240)
    assert o.rate_vs_control is not None
    assert close(o.rate_vs_control.p_value, p) and close(o.rate_vs_control.ci_low, lo)
    assert close(o.rate_vs_control.ci_high, hi)
    assert srm is not None and srm.flagged
    assert close(srm.p_value, float(sp.chisquare([240, 160], [200, 200]).pvalue))
