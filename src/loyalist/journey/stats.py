"""The statistics of an experiment readout (pure; scipy only for the distributions).

* Means (revenue per member): two-sided Welch t-test. ``diff = mean_v − mean_c``,
  ``se = √(s²_v/n_v + s²_c/n_c)`` with sample variances (n − 1), Welch–Satterthwaite
  degrees of freedom, ``p = 2·T_df.sf(|diff/se|)``, CI ``diff ± T_df.ppf(1 − α/2)·se``.
* Rates (conversion): two-proportion z-test. The p-value uses the pooled proportion
  ``p̂ = (x_v + x_c)/(n_v + n_c)``, ``se₀ = √(p̂(1 − p̂)(1/n_v + 1/n_c))``; the CI the
  unpooled ``se = √(p_v(1 − p_v)/n_v + p_c(1 − p_c)/n_c)``: ``diff ± z_{1 − α/2}·se``.
* Sample-ratio mismatch: Pearson's chi-square of the counts against the split's weights,
  ``k − 1`` degrees of freedom; flagged when ``p < 0.001``.

Where a statistic is undefined (fewer than two members, no variance at all) it is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def _sp() -> Any:
    """scipy.stats, imported when a readout is computed, not when the API process starts
    (it is most of a server process's import time and ~40 MB of its memory; issue 11)."""
    from scipy import stats

    return stats


SRM_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class Comparison:
    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def variance(values: Sequence[float]) -> float:
    """Sample variance (n − 1)."""
    n = len(values)
    if n < 2:
        return math.nan
    m = mean(values)
    return math.fsum((v - m) ** 2 for v in values) / (n - 1)


def welch(variant: Sequence[float], control: Sequence[float], alpha: float = 0.05) -> Comparison:
    n1, n2 = len(variant), len(control)
    diff = mean(variant) - mean(control)
    if n1 < 2 or n2 < 2:
        return Comparison(diff, None, None, None)
    a, b = variance(variant) / n1, variance(control) / n2
    se = math.sqrt(a + b)
    if se == 0:
        return Comparison(diff, None, None, None)
    df = (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1))
    t = diff / se
    p = float(2 * _sp().t.sf(abs(t), df))
    q = float(_sp().t.ppf(1 - alpha / 2, df))
    return Comparison(diff, diff - q * se, diff + q * se, p)


def two_proportions(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05) -> Comparison:
    if n1 == 0 or n2 == 0:
        return Comparison(0.0, None, None, None)
    p1, p2 = x1 / n1, x2 / n2
    diff = p1 - p2
    pooled = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = float(_sp().norm.ppf(1 - alpha / 2))
    p = float(2 * _sp().norm.sf(abs(diff / se0))) if se0 > 0 else None
    return Comparison(diff, diff - z * se, diff + z * se, p)


@dataclass(frozen=True, slots=True)
class Srm:
    chi2: float
    p_value: float
    flagged: bool


def srm(counts: Sequence[int], weights: Sequence[float]) -> Srm | None:
    """Chi-square of ``counts`` against the split's ``weights`` (None: nothing to test)."""
    total = sum(counts)
    wsum = math.fsum(weights)
    pairs = [(c, w) for c, w in zip(counts, weights, strict=True) if w > 0]
    if total == 0 or len(pairs) < 2:
        return None
    chi2 = math.fsum((c - total * w / wsum) ** 2 / (total * w / wsum) for c, w in pairs)
    p = float(_sp().chi2.sf(chi2, len(pairs) - 1))
    return Srm(chi2, p, p < SRM_THRESHOLD)
