"""Gamma-Gamma model of spend per transaction (Fader & Hardie 2013).

A customer's transaction values are ``Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)`` across
customers; the model is fitted on repeat buyers from ``x`` (number of repeat transactions)
and ``m`` (their mean value).  It assumes spend is independent of purchase frequency.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from loyalist.analytics._typing import FloatArray
from loyalist.analytics.errors import InputError, ModelError
from loyalist.analytics.models._base import FitResult, compress, dot, maximise
from loyalist.analytics.models.bgnbd import as_float_array

PARAM_NAMES = ("p", "q", "gamma")


@dataclass(frozen=True)
class _Data:
    x: FloatArray
    log_m: FloatArray
    log_x: FloatArray
    mx: FloatArray
    w: FloatArray
    inv: np.ndarray[tuple[int], np.dtype[np.intp]]
    ux: FloatArray
    wx: FloatArray
    sum_w_log_m: float
    sum_w_log_x: float
    wx_log: float  # sum over customers of x (log m + log x)
    n_total: float
    n_rows: int


def _prepare(x: FloatArray, m: FloatArray, w: FloatArray | None) -> _Data:
    comp = compress(x, m, weights=w)
    cx, cm = comp.columns
    cw = comp.weights
    ux, inv = np.unique(cx, return_inverse=True)
    wx = np.bincount(inv, weights=cw, minlength=ux.shape[0]).astype(np.float64)
    log_m = np.log(cm)
    log_x = np.log(cx)
    return _Data(
        x=cx,
        log_m=log_m,
        log_x=log_x,
        mx=cm * cx,
        w=cw,
        inv=inv.astype(np.intp),
        ux=ux,
        wx=wx,
        sum_w_log_m=dot(cw, log_m),
        sum_w_log_x=dot(cw, log_x),
        wx_log=dot(cw * cx, log_m + log_x),
        n_total=float(cw.sum()),
        n_rows=comp.n_rows,
    )


def _negloglik(log_params: FloatArray, d: _Data) -> tuple[float, FloatArray]:
    p, q, g = np.exp(log_params)
    n = d.n_total
    ux, wx = d.ux, d.wx
    pxq_u = p * ux + q
    # per-x terms
    ll = dot(wx, gammaln(pxq_u) - gammaln(p * ux))
    dig_pxq_u = digamma(pxq_u)
    g_p = dot(wx * ux, dig_pxq_u - digamma(p * ux))
    g_q = dot(wx, dig_pxq_u)
    # constant-in-row terms
    ll += n * (-gammaln(q) + q * math.log(g)) + p * d.wx_log - d.sum_w_log_m
    g_p += d.wx_log
    g_q += n * (-digamma(q) + math.log(g))
    g_g = n * q / g
    # per-row term: -(p x + q) log(gamma + m x)
    lgm = np.log(g + d.mx)
    pxq = p * d.x + q
    wl = d.w * lgm
    ll -= dot(pxq, wl)
    g_p -= dot(d.x, wl)
    g_q -= float(wl.sum())
    g_g -= dot(d.w * pxq, 1.0 / (g + d.mx))
    grad = np.array([g_p * p, g_q * q, g_g * g], dtype=np.float64)
    return -ll / n, -grad / n


@dataclass(frozen=True)
class GammaGamma:
    """A fitted (or given) Gamma-Gamma spend model."""

    p: float
    q: float
    gamma: float
    fit_result: FitResult | None = None

    @property
    def params(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}

    @classmethod
    def fit(
        cls,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        *,
        weights: ArrayLike | None = None,
        standard_errors: bool = True,
        exclude_nonpositive: bool = True,
    ) -> GammaGamma:
        """Fit on customers with at least one repeat purchase and a positive mean value.

        Customers with ``frequency == 0`` carry no repeat spend and are not used.  Repeat
        buyers whose mean repeat value is zero or negative (fully refunded orders, free
        items) cannot come from a Gamma distribution: they are left out and counted in
        ``fit_result.extra["excluded_nonpositive_value"]``, or, with
        ``exclude_nonpositive=False``, rejected with an error naming their rows.
        """
        started = time.perf_counter()
        x = as_float_array(frequency, "frequency")
        m = as_float_array(monetary_value, "monetary_value")
        if x.shape != m.shape:
            raise InputError("frequency and monetary_value must have the same length")
        w = None if weights is None else as_float_array(weights, "weights")
        if np.any(x < 0) or np.any(x != np.floor(x)):
            bad_x = (x < 0) | (x != np.floor(x))
            raise InputError(
                "frequency must be a whole number >= 0", rows=(np.flatnonzero(bad_x) + 1).tolist()
            )
        keep = x > 0
        bad = keep & (m <= 0)
        if np.any(bad) and not exclude_nonpositive:
            raise InputError(
                "repeat buyers must have a positive mean transaction value",
                rows=(np.flatnonzero(bad) + 1).tolist(),
            )
        excluded = float(np.sum(bad) if w is None else np.sum(w[bad]))
        keep &= ~bad
        if not np.any(keep):
            raise InputError(
                "Gamma-Gamma needs at least one customer with repeat purchases of positive value"
            )
        data = _prepare(x[keep], m[keep], None if w is None else w[keep])
        mean_m = float(np.average(m[keep], weights=None if w is None else w[keep]))
        start = np.log(np.array([2.0, 3.0, mean_m], dtype=np.float64))
        logp, value, ses, report = maximise(
            lambda lp: _negloglik(lp, data),
            start,
            PARAM_NAMES,
            n_total=data.n_total,
            want_standard_errors=standard_errors,
        )
        p, q, g = (float(v) for v in np.exp(logp))
        result = FitResult(
            model="gamma_gamma",
            params={"p": p, "q": q, "gamma": g},
            log_likelihood=-value * data.n_total,
            standard_errors=ses,
            n_customers=round(data.n_total),
            n_unique_rows=data.n_rows,
            convergence=report,
            seconds=time.perf_counter() - started,
            extra={"excluded_nonpositive_value": excluded} if excluded else {},
        )
        return cls(p=p, q=q, gamma=g, fit_result=result)

    def _check(self) -> None:
        if not all(math.isfinite(v) and v > 0 for v in (self.p, self.q, self.gamma)):
            reason = self.fit_result.convergence.reason if self.fit_result else "bad parameters"
            raise ModelError(f"Gamma-Gamma parameters are not usable: {reason}")

    @property
    def mean_transaction_value(self) -> float:
        """Population mean spend per transaction, p gamma / (q - 1) (infinite if q <= 1)."""
        self._check()
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1.0 else math.inf

    def conditional_expected_value(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        """E[M | x, m]: expected spend per future transaction of each customer.

        Customers with no repeat purchase get the population mean.
        """
        self._check()
        x = as_float_array(frequency, "frequency")
        m = as_float_array(monetary_value, "monetary_value")
        if self.q <= 1.0:
            raise ModelError("q <= 1: the mean transaction value is infinite under this fit")
        p, q, g = self.p, self.q, self.gamma
        safe_m = np.where(x > 0, m, 0.0)
        out = p * (g + safe_m * x) / (p * x + q - 1.0)
        return np.asarray(out, dtype=np.float64)

    def log_likelihood(self, frequency: ArrayLike, monetary_value: ArrayLike) -> FloatArray:
        self._check()
        x = as_float_array(frequency, "frequency")
        m = as_float_array(monetary_value, "monetary_value")
        p, q, g = self.p, self.q, self.gamma
        px = p * x
        out = (
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * math.log(g)
            + (px - 1.0) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(g + m * x)
        )
        return np.asarray(out, dtype=np.float64)
