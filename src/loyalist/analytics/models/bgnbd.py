"""BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

While active, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``;
after each purchase they become inactive with probability ``p ~ Beta(a, b)``.

Data per customer: ``x`` repeat purchases, ``t_x`` time of the last one (recency, measured
from the first purchase) and ``T`` the length of observation since the first purchase.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from loyalist.analytics._typing import FloatArray, IntArray
from loyalist.analytics.errors import InputError, ModelError
from loyalist.analytics.models._base import (
    NO_REPEAT_BUYERS,
    Compressed,
    FitResult,
    compress,
    dot,
    fit_compressed,
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
        ((x == 0) & (t_x != 0), "recency must be 0 for customers without repeat purchases"),
        (big_t < 0, "T is negative"),
    )
    for mask, message in checks:
        if np.any(mask):
            raise InputError(message, rows=(np.flatnonzero(mask) + 1).tolist())


def rft_arrays(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(frequency, recency, T) as broadcast, contiguous float arrays for prediction."""
    x, t_x, big_t = np.broadcast_arrays(
        as_float_array(frequency, "frequency"),
        as_float_array(recency, "recency"),
        as_float_array(T, "T"),
    )
    return (
        np.ascontiguousarray(x, dtype=np.float64),
        np.ascontiguousarray(t_x, dtype=np.float64),
        np.ascontiguousarray(big_t, dtype=np.float64),
    )


def compressed_rft(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None
) -> Compressed:
    """Validated (frequency, recency, T) rows compressed to distinct rows for a fit."""
    x = as_float_array(frequency, "frequency")
    t_x = as_float_array(recency, "recency")
    big_t = as_float_array(T, "T")
    check_rft(x, t_x, big_t)
    if x.size == 0:
        raise InputError("no customers to fit")
    w = None if weights is None else as_float_array(weights, "weights")
    return compress(x, t_x, big_t, weights=w)


@dataclass(frozen=True)
class _Data:
    """Compressed data split into the parts the likelihood needs.

    Observation lengths and recencies take few distinct values in real data (whole days),
    so logarithms and reciprocals are computed once per distinct value and gathered, and
    sums of terms that depend on T alone are taken over the distinct values.
    """

    # rows with x > 0
    x: FloatArray
    w: FloatArray
    ix: IntArray  # index of the row's x in ``uxp``
    it: IntArray  # index of the row's T in ``ut``
    itx: IntArray  # index of the row's t_x in ``utx``
    uxp: FloatArray  # distinct x > 0
    ut: FloatArray  # distinct T of repeat buyers
    w_t: FloatArray  # total weight per distinct T
    wx_t: FloatArray  # total weight * x per distinct T
    utx: FloatArray  # distinct t_x
    # rows with x == 0 (t_x == 0): only T matters
    t0: FloatArray
    w0: FloatArray
    # distinct x values over all rows and their total weights (for per-x terms)
    ux: FloatArray
    wx: FloatArray
    n_total: float
    n_rows: int
    buffers: tuple[FloatArray, ...] = ()


def _distinct(values: FloatArray) -> tuple[FloatArray, IntArray]:
    uniq, inverse = np.unique(values, return_inverse=True)
    return uniq, inverse.astype(np.intp)


def _prepare(comp: Compressed) -> _Data:
    x, t_x, big_t = comp.columns
    w = comp.weights
    pos = x > 0
    ux, inv = _distinct(x)
    wx = np.bincount(inv, weights=w, minlength=ux.shape[0]).astype(np.float64)
    xp = np.ascontiguousarray(x[pos])
    wp = np.ascontiguousarray(w[pos])
    uxp = ux[ux > 0]
    ut, it = _distinct(big_t[pos])
    utx, itx = _distinct(t_x[pos])
    t0, i0 = _distinct(big_t[~pos])
    return _Data(
        x=xp,
        w=wp,
        ix=np.searchsorted(uxp, xp).astype(np.intp),
        it=it,
        itx=itx,
        uxp=uxp,
        ut=ut,
        w_t=np.bincount(it, weights=wp, minlength=ut.shape[0]).astype(np.float64),
        wx_t=np.bincount(it, weights=wp * xp, minlength=ut.shape[0]).astype(np.float64),
        utx=utx,
        t0=t0,
        w0=np.bincount(i0, weights=w[~pos], minlength=t0.shape[0]).astype(np.float64),
        ux=ux,
        wx=wx,
        n_total=float(w.sum()),
        n_rows=comp.n_rows,
        buffers=tuple(np.empty(xp.shape[0]) for _ in range(6)),
    )


def _negloglik(log_params: FloatArray, d: _Data) -> tuple[float, FloatArray]:
    """Mean negative log-likelihood and its gradient with respect to log-parameters.

    Per customer (Fader, Hardie & Lee 2005, eq. 6, written in log space):

        log L = log G(r+x) - log G(r) + r log alpha + log B(a, b+x) - log B(a, b)
                - (r+x) log(alpha+T) + log(1 + [x>0] exp(D))
        D     = log a - log(b+x-1) + (r+x) [log(alpha+T) - log(alpha+t_x)]

    ``log(1 + e^D)`` is a softplus, finite for every D; its derivative is expit(D), the
    posterior probability that the customer dropped out after the last purchase.
    """
    r, alpha, a, b = (float(v) for v in np.exp(log_params))
    n = d.n_total
    ux, wx = d.ux, d.wx
    # Terms that depend on x only (log-gamma and log-beta parts).
    ll = dot(wx, gammaln(r + ux) + gammaln(b + ux) - gammaln(a + b + ux)) + n * (
        -gammaln(r) + r * math.log(alpha) + gammaln(a + b) - gammaln(b)
    )
    dig_abx = digamma(a + b + ux)
    g_r = dot(wx, digamma(r + ux)) + n * (math.log(alpha) - digamma(r))
    g_alpha = n * r / alpha
    g_a = n * digamma(a + b) - dot(wx, dig_abx)
    g_b = dot(wx, digamma(b + ux) - dig_abx) + n * (digamma(a + b) - digamma(b))

    # x == 0 rows: only -r log(alpha + T).
    if d.t0.size:
        at0 = alpha + d.t0
        lat0 = np.log(at0)
        s0 = dot(d.w0, lat0)
        ll -= r * s0
        g_r -= s0
        g_alpha -= r * dot(d.w0, 1.0 / at0)

    # x > 0 rows: -(r+x) log(alpha+T) + softplus(D).
    if d.x.size:
        lat_u = np.log(alpha + d.ut)
        inv_at_u = 1.0 / (alpha + d.ut)
        latx_u = np.log(alpha + d.utx)
        inv_atx_u = 1.0 / (alpha + d.utx)
        # sums over rows of terms in T alone, taken over the distinct T
        s_lat = dot(d.w_t, lat_u)
        ll -= r * s_lat + dot(d.wx_t, lat_u)
        g_r -= s_lat
        g_alpha -= r * dot(d.w_t, inv_at_u) + dot(d.wx_t, inv_at_u)
        # per-row terms, computed in preallocated buffers (fresh temporaries of this size
        # cost page faults that take as long as the arithmetic)
        b1, b2, b3, b4, b5, b6 = d.buffers
        np.take(lat_u, d.it, out=b1)
        np.take(latx_u, d.itx, out=b2)
        np.subtract(b1, b2, out=b1)  # dl = log((alpha+T)/(alpha+t_x)) >= 0
        np.add(d.x, r, out=b4)  # r + x
        np.multiply(b4, b1, out=b3)
        np.take(math.log(a) - np.log(b + d.uxp - 1.0), d.ix, out=b2)
        np.add(b2, b3, out=b2)  # D
        # softplus(D) = max(D, 0) + log1p(e), expit(D) = [1 or e] / (1 + e), e = exp(-|D|)
        np.abs(b2, out=b3)
        np.negative(b3, out=b3)
        np.exp(b3, out=b3)
        np.log1p(b3, out=b5)
        np.maximum(b2, 0.0, out=b6)
        np.add(b5, b6, out=b5)
        ll += dot(d.w, b5)
        np.add(b3, 1.0, out=b6)
        np.copyto(b3, 1.0, where=b2 >= 0.0)
        np.divide(b3, b6, out=b3)
        np.multiply(d.w, b3, out=b3)  # weight * P(dropped out after t_x)
        g_r += dot(b3, b1)
        np.take(inv_at_u, d.it, out=b5)
        np.take(inv_atx_u, d.itx, out=b6)
        np.subtract(b5, b6, out=b5)
        np.multiply(b3, b4, out=b6)
        g_alpha += dot(b6, b5)
        g_a += float(b3.sum()) / a
        np.take(1.0 / (b + d.uxp - 1.0), d.ix, out=b5)
        g_b -= dot(b3, b5)

    grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b], dtype=np.float64)
    if not math.isfinite(ll):
        return math.inf, np.zeros(4)
    return -ll / n, -grad / n


def _start(d: _Data) -> FloatArray:
    total_x = dot(d.wx, d.ux)
    total_t = dot(d.w_t, d.ut) + dot(d.w0, d.t0)
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
        comp = compressed_rft(frequency, recency, T, weights)
        result = fit_compressed(
            "bgnbd",
            PARAM_NAMES,
            comp,
            prepare=_prepare,
            negloglik=_negloglik,
            start=_start,
            started=started,
            warm_start_rows=_WARM_START_ROWS,
            warm_start_sample=_WARM_START_SAMPLE,
            want_standard_errors=standard_errors,
            unidentified_reason=None if np.any(comp.columns[0] > 0) else NO_REPEAT_BUYERS,
        )
        r, alpha, a, b = (result.params[n] for n in PARAM_NAMES)
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
        x, t_x, big_t = self._arrays(frequency, recency, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        base = (
            gammaln(r + x)
            - gammaln(r)
            + r * math.log(alpha)
            + betaln(a, b + x)
            - betaln(a, b)
            - (r + x) * np.log(alpha + big_t)
        )
        return np.asarray(
            base + np.logaddexp(0.0, self._log_odds_dead(x, t_x, big_t)), dtype=np.float64
        )

    # ------------------------------------------------------------ prediction
    def _log_odds_dead(self, x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> FloatArray:
        """log[a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)] for x > 0, -inf for x == 0."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        pos = x > 0
        out = np.full(x.shape, -np.inf)
        xp = x[pos]
        out[pos] = (
            math.log(a)
            - np.log(b + xp - 1.0)
            + (r + xp) * (np.log(alpha + big_t[pos]) - np.log(alpha + t_x[pos]))
        )
        return out

    def _arrays(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        self._check()
        return rft_arrays(frequency, recency, T)

    def probability_alive(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> FloatArray:
        """P(customer still active at T | x, t_x, T) = 1 / (1 + odds of having dropped out)."""
        x, t_x, big_t = self._arrays(frequency, recency, T)
        return np.asarray(expit(-self._log_odds_dead(x, t_x, big_t)), dtype=np.float64)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """E[X(t)]: expected purchases in (0, t] of a customer just acquired at 0."""
        self._check()
        tt = as_float_array(t, "t")
        zeros = np.zeros_like(tt)
        return _purchases_if_alive(self.r, self.alpha, self.a, self.b, zeros, zeros, tt)

    def conditional_expected_purchases(
        self,
        t: ArrayLike,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected repeat purchases in (T, T + t]."""
        x, t_x, big_t = self._arrays(frequency, recency, T)
        tt = np.ascontiguousarray(np.broadcast_to(as_float_array(t, "t"), x.shape))
        if np.any(tt < 0):
            raise InputError(
                "the horizon t must be >= 0", rows=(np.flatnonzero(tt < 0) + 1).tolist()
            )
        alive = expit(-self._log_odds_dead(x, t_x, big_t))
        ahead = _purchases_if_alive(self.r, self.alpha, self.a, self.b, x, big_t, tt)
        return np.asarray(alive * ahead, dtype=np.float64)


# Distance from the removable singularities a == 1 and a + b + x - 1 == 0 below which the
# closed form loses digits to cancellation; there the value is the mean of two nearby
# evaluations (error O(step^2), about 1e-6 relative at worst).
_SINGULAR = 1e-4


def _purchases_if_alive_raw(
    r: float, alpha: float, a: float, b: float, x: FloatArray, big_t: FloatArray, t: FloatArray
) -> FloatArray:
    c = a + b + x - 1.0
    z = t / (alpha + big_t + t)
    log_1mz = np.log(alpha + big_t) - np.log(alpha + big_t + t)
    term = np.exp((a - 1.0) * log_1mz) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    return np.asarray(c / (a - 1.0) * (1.0 - term), dtype=np.float64)


def _purchases_if_alive(
    r: float, alpha: float, a: float, b: float, x: FloatArray, big_t: FloatArray, t: FloatArray
) -> FloatArray:
    """Expected purchases in (T, T + t] of a customer known to be active at T.

    Fader, Hardie & Lee (2005), eq. 10 without the P(alive) factor:

        (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]

    with z = t/(alpha+T+t).  The hypergeometric factor grows like (1-z)^-(r+x+1-a) and
    overflows for heavy buyers over long horizons, so it is used after Euler's
    transformation 2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z):

        (1-z)^(r+x) 2F1(r+x, b+x; C; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; C; z)

    whose series converges at z = 1 (C - (C-A) - (C-B) = r + x > 0) and stays finite.
    """
    near_one = abs(a - 1.0) < _SINGULAR
    near_pole = abs(a + b - 1.0) < _SINGULAR and bool(np.any(x == 0))
    if not (near_one or near_pole):
        return _purchases_if_alive_raw(r, alpha, a, b, x, big_t, t)
    step = 2.0 * _SINGULAR
    if a > 2.0 * step:
        lo = _purchases_if_alive_raw(r, alpha, a - step, b, x, big_t, t)
        hi = _purchases_if_alive_raw(r, alpha, a + step, b, x, big_t, t)
    else:  # a tiny, b close to 1: move b instead
        lo = _purchases_if_alive_raw(r, alpha, a, b - step, x, big_t, t)
        hi = _purchases_if_alive_raw(r, alpha, a, b + step, x, big_t, t)
    return np.asarray(0.5 * (lo + hi), dtype=np.float64)
