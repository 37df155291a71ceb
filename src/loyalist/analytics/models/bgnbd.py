"""BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

While active, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``;
after each purchase they become inactive with probability ``p ~ Beta(a, b)``.

Data per customer: ``x`` repeat purchases, ``t_x`` time of the last one (recency, measured
from the first purchase) and ``T`` the length of observation since the first purchase.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, gammaln, hyp2f1

from loyalist.analytics._typing import FloatArray
from loyalist.analytics.errors import InputError, ModelError
from loyalist.analytics.models._base import (
    Compressed,
    FitResult,
    compress,
    maximise,
    subsample,
)

PARAM_NAMES = ("r", "alpha", "a", "b")
_WARM_START_ROWS = 150_000
_WARM_START_SAMPLE = 40_000


def as_float_array(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr)) + 1
        raise InputError(f"{name} contains missing or infinite values", rows=bad.tolist())
    return arr


def check_rft(x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> None:
    """Validate (frequency, recency, T) triples, naming offending rows (1-based)."""
    if not (x.shape == t_x.shape == big_t.shape):
        raise InputError("frequency, recency and T must have the same length")
    checks = (
        (x < 0, "frequency is negative"),
        (x != np.floor(x), "frequency is not a whole number"),
        (t_x < 0, "recency is negative"),
        (t_x > big_t * (1 + 1e-12) + 1e-12, "recency exceeds T"),
        ((x > 0) & (t_x <= 0), "customers with repeat purchases must have recency > 0"),
        (big_t < 0, "T is negative"),
    )
    for mask, message in checks:
        if np.any(mask):
            raise InputError(message, rows=(np.flatnonzero(mask) + 1).tolist())


@dataclass(frozen=True)
class _Data:
    """Compressed data split into the parts the likelihood needs."""

    # rows with x > 0
    x: FloatArray
    t_x: FloatArray
    big_t: FloatArray
    w: FloatArray
    # rows with x == 0 (t_x == 0): only T matters
    t0: FloatArray
    w0: FloatArray
    # distinct x values over all rows and their total weights (for per-x terms)
    ux: FloatArray
    wx: FloatArray
    n_total: float
    n_rows: int


def _prepare(comp: Compressed) -> _Data:
    x, t_x, big_t = comp.columns
    w = comp.weights
    pos = x > 0
    ux, inv = np.unique(x, return_inverse=True)
    wx = np.bincount(inv, weights=w, minlength=ux.shape[0]).astype(np.float64)
    return _Data(
        x=x[pos],
        t_x=t_x[pos],
        big_t=big_t[pos],
        w=w[pos],
        t0=big_t[~pos],
        w0=w[~pos],
        ux=ux,
        wx=wx,
        n_total=float(w.sum()),
        n_rows=comp.n_rows,
    )


def _negloglik(log_params: FloatArray, d: _Data) -> tuple[float, FloatArray]:
    """Mean negative log-likelihood and its gradient with respect to log-parameters."""
    r, alpha, a, b = np.exp(log_params)
    ux, wx = d.ux, d.wx
    # Terms that depend on x only: A1 + A2 (without the r log alpha part).
    ll = float(
        wx @ (gammaln(r + ux) + gammaln(b + ux) - gammaln(a + b + ux))
        + d.n_total * (-gammaln(r) + r * math.log(alpha) + gammaln(a + b) - gammaln(b))
    )
    dig_abx = digamma(a + b + ux)
    g_r = float(wx @ digamma(r + ux)) + d.n_total * (math.log(alpha) - digamma(r))
    g_alpha = d.n_total * r / alpha
    g_a = d.n_total * digamma(a + b) - float(wx @ dig_abx)
    g_b = float(wx @ (digamma(b + ux) - dig_abx)) + d.n_total * (digamma(a + b) - digamma(b))

    # x == 0 rows: only the "still alive at T" term, -(r) log(alpha + T).
    if d.t0.size:
        at0 = alpha + d.t0
        lat0 = np.log(at0)
        ll -= r * float(d.w0 @ lat0)
        g_r -= float(d.w0 @ lat0)
        g_alpha -= r * float(d.w0 @ (1.0 / at0))

    # x > 0 rows: log( exp(A3) + exp(A4) ) with
    #   A3 = -(r + x) log(alpha + T),  A4 = log a - log(b + x - 1) - (r + x) log(alpha + t_x)
    if d.x.size:
        w = d.w
        rx = r + d.x
        at = alpha + d.big_t
        atx = alpha + d.t_x
        lat = np.log(at)
        latx = np.log(atx)
        bx1 = b + d.x - 1.0
        diff = math.log(a) - np.log(bx1) + rx * (lat - latx)  # A4 - A3
        # softplus(diff) = log(1 + e^diff), stable for either sign
        sp = np.maximum(diff, 0.0) + np.log1p(np.exp(-np.abs(diff)))
        w4 = np.exp(diff - sp)  # weight of the "dropped out after t_x" branch
        ll += float(w @ (sp - rx * lat))
        ww4 = w * w4
        g_r += float(ww4 @ (lat - latx) - w @ lat)
        inv_at = 1.0 / at
        g_alpha += float(-(w * rx) @ inv_at + (ww4 * rx) @ (inv_at - 1.0 / atx))
        g_a += float(ww4.sum()) / a
        g_b -= float(ww4 @ (1.0 / bx1))

    grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b], dtype=np.float64)
    n = d.n_total
    return -ll / n, -grad / n


def _start(d: _Data) -> FloatArray:
    total_x = float(d.wx @ d.ux)
    total_t = float(d.w @ d.big_t + d.w0 @ d.t0)
    rate = max(total_x / max(total_t, 1e-12), 1e-6)
    return np.log(np.array([1.0, 1.0 / rate, 1.0, 3.0], dtype=np.float64))


@dataclass(frozen=True)
class BGNBD:
    """A fitted (or given) BG/NBD model."""

    r: float
    alpha: float
    a: float
    b: float
    fit_result: FitResult | None = None

    @property
    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    # ---------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        weights: ArrayLike | None = None,
        standard_errors: bool = True,
    ) -> BGNBD:
        """Maximum-likelihood fit. Never raises on non-convergence: see ``fit_result``."""
        started = time.perf_counter()
        x = as_float_array(frequency, "frequency")
        t_x = as_float_array(recency, "recency")
        big_t = as_float_array(T, "T")
        check_rft(x, t_x, big_t)
        if x.size == 0:
            raise InputError("no customers to fit")
        w = None if weights is None else as_float_array(weights, "weights")
        comp = compress(x, t_x, big_t, weights=w)
        data = _prepare(comp)
        start = _start(data)
        warm_rows: int | None = None
        if comp.n_rows > _WARM_START_ROWS:
            # Fit a random subset first: the full-data polish then needs few iterations.
            sub = _prepare(subsample(comp, _WARM_START_SAMPLE))
            sx, _, _, _srep = maximise(
                lambda p: _negloglik(p, sub),
                start,
                PARAM_NAMES,
                n_total=sub.n_total,
                want_standard_errors=False,
            )
            if np.all(np.isfinite(sx)):
                start = sx
                warm_rows = int(sub.n_total)
        logp, value, ses, report = maximise(
            lambda p: _negloglik(p, data),
            start,
            PARAM_NAMES,
            n_total=data.n_total,
            want_standard_errors=standard_errors,
        )
        if warm_rows is not None:
            report = replace(report, warm_start_rows=warm_rows)
        r, alpha, a, b = (float(v) for v in np.exp(logp))
        result = FitResult(
            model="bgnbd",
            params={"r": r, "alpha": alpha, "a": a, "b": b},
            log_likelihood=-value * data.n_total,
            standard_errors=ses,
            n_customers=round(data.n_total),
            n_unique_rows=data.n_rows,
            convergence=report,
            seconds=time.perf_counter() - started,
        )
        return cls(r=r, alpha=alpha, a=a, b=b, fit_result=result)

    def _check(self) -> None:
        if not all(math.isfinite(v) and v > 0 for v in (self.r, self.alpha, self.a, self.b)):
            reason = self.fit_result.convergence.reason if self.fit_result else "bad parameters"
            raise ModelError(f"BG/NBD parameters are not usable: {reason}")

    # ------------------------------------------------------------ likelihood
    def log_likelihood(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> FloatArray:
        """Per-customer log-likelihood."""
        self._check()
        x = as_float_array(frequency, "frequency")
        t_x = as_float_array(recency, "recency")
        big_t = as_float_array(T, "T")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        base = (
            gammaln(r + x)
            - gammaln(r)
            + r * math.log(alpha)
            + betaln(a, b + x)
            - betaln(a, b)
            - (r + x) * np.log(alpha + big_t)
        )
        with np.errstate(divide="ignore"):
            diff = np.where(
                x > 0,
                math.log(a)
                - np.log(np.maximum(b + x - 1.0, 1e-300))
                + (r + x) * (np.log(alpha + big_t) - np.log(alpha + t_x)),
                -np.inf,
            )
        return np.asarray(base + np.logaddexp(0.0, diff), dtype=np.float64)

    # ------------------------------------------------------------ prediction
    def _odds_dead(self, x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> FloatArray:
        """a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x) for x > 0, else 0 (log-space)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        pos = x > 0
        out = np.zeros_like(x)
        xp = x[pos]
        log_odds = (
            math.log(a)
            - np.log(b + xp - 1.0)
            + (r + xp) * (np.log(alpha + big_t[pos]) - np.log(alpha + t_x[pos]))
        )
        out[pos] = np.exp(np.minimum(log_odds, 700.0))
        return out

    def probability_alive(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> FloatArray:
        """P(customer still active at T | x, t_x, T)."""
        self._check()
        x = as_float_array(frequency, "frequency")
        t_x = as_float_array(recency, "recency")
        big_t = as_float_array(T, "T")
        return np.asarray(1.0 / (1.0 + self._odds_dead(x, t_x, big_t)), dtype=np.float64)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """E[X(t)]: expected purchases in (0, t] of a customer just acquired at 0."""
        self._check()
        tt = as_float_array(t, "t")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = tt / (alpha + tt)
        term = np.exp(r * (math.log(alpha) - np.log(alpha + tt))) * hyp2f1(r, b, a + b - 1.0, z)
        return np.asarray((a + b - 1.0) / (a - 1.0) * (1.0 - term), dtype=np.float64)

    def conditional_expected_purchases(
        self,
        t: ArrayLike,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected repeat purchases in (T, T + t]."""
        self._check()
        x = as_float_array(frequency, "frequency")
        t_x = as_float_array(recency, "recency")
        big_t = as_float_array(T, "T")
        tt = np.broadcast_to(as_float_array(t, "t"), x.shape)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if abs(a - 1.0) < 1e-9:
            raise ModelError("conditional expectation undefined for a == 1")
        z = tt / (alpha + big_t + tt)
        log_ratio = (r + x) * (np.log(alpha + big_t) - np.log(alpha + big_t + tt))
        hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, z)
        bracket = 1.0 - np.exp(log_ratio) * hyp
        lead = (a + b + x - 1.0) / (a - 1.0)
        out = lead * bracket / (1.0 + self._odds_dead(x, t_x, big_t))
        return np.asarray(np.maximum(out, 0.0), dtype=np.float64)
