"""Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo 1987).

While active a customer buys at rate ``lambda ~ Gamma(r, alpha)``; their lifetime is
exponential with rate ``mu ~ Gamma(s, beta)``.  The likelihood is written as

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ E + s (G(t_x) - G(T)) ]
    E = (alpha+T)^-(r+x) (beta+T)^-s
    G(tau) = integral from tau to infinity of (alpha+u)^-(r+x) (beta+u)^-(s+1) du

and ``G`` is evaluated through the Gaussian hypergeometric function after an Euler
transformation, ``2F1(c, b; c+1; z) = (1-z)^(1-b) 2F1(1, c+1-b; c+1; z)``: the series of
the right-hand side has positive terms that shrink at least geometrically with ratio ``z``,
so it never overflows, needs no cancellation, and its derivatives with respect to every
parameter are summed term by term alongside it (analytic gradients).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from loyalist.analytics._typing import FloatArray
from loyalist.analytics.errors import ModelError
from loyalist.analytics.models._base import (
    NO_REPEAT_BUYERS,
    Compressed,
    FitResult,
    dot,
    fit_compressed,
)
from loyalist.analytics.models.bgnbd import as_float_array, compressed_rft, rft_arrays

PARAM_NAMES = ("r", "alpha", "s", "beta")
_MAX_TERMS = 20_000
_TOL = 1e-16
_WARM_START_ROWS = 100_000
_WARM_START_SAMPLE = 30_000


@dataclass(frozen=True)
class _Series:
    """F = 2F1(1, e; c+1; z) and its partial derivatives (per row)."""

    f: FloatArray
    f_z: FloatArray
    f_e: FloatArray
    f_c: FloatArray


# Rows with z up to this are summed with a fixed number of terms (at most 176).
_Z_DENSE = 0.8


def hyp_series(e: FloatArray, c: FloatArray, z: FloatArray) -> _Series:
    """Sum 2F1(1, e; c+1; z) = sum_k (e)_k / (c+1)_k z^k for 0 <= z < 1, e < c + 1.

    Terms are positive and decrease (ratio (e+k)/(c+1+k) z < z), so the sum is accurate to
    rounding.  Rows with z <= 0.8 (the usual case: alpha and beta of the same order) need
    at most 176 terms, summed for all of them at once; the others are iterated.
    """
    dense = z <= _Z_DENSE
    if np.all(dense):
        return _dense_series(e, c, z)
    out = _Series(np.empty_like(z), np.empty_like(z), np.empty_like(z), np.empty_like(z))
    for mask, fn in ((dense, _dense_series), (~dense, _iterated_series)):
        if np.any(mask):
            part = fn(e[mask], c[mask], z[mask])
            out.f[mask], out.f_z[mask], out.f_e[mask], out.f_c[mask] = (
                part.f,
                part.f_z,
                part.f_e,
                part.f_c,
            )
    return out


def _dense_series(e: FloatArray, c: FloatArray, z: FloatArray) -> _Series:
    """The series with the same K terms for every row, K chosen so that z_max^K < 1e-17
    (no per-term convergence test, no shrinking of the row set)."""
    n = z.shape[0]
    z_max = float(z.max()) if n else 0.0
    k_terms = 1 if z_max <= 0.0 else max(1, min(60, math.ceil(-39.2 / math.log(z_max))))
    f = np.ones(n)
    f_z = np.zeros(n)
    f_e = np.zeros(n)
    f_c = np.zeros(n)
    c1 = c + 1.0
    p = e / c1  # p_k = (e)_k / (c+1)_k z^(k-1), k = 1
    he = 1.0 / e  # sum_{j<k} 1/(e+j)
    hc = 1.0 / c1  # sum_{j<k} 1/(c+1+j)
    term = np.empty(n)
    for k in range(1, k_terms + 1):
        np.multiply(p, z, out=term)
        f += term
        f_z += k * p
        f_e += term * he
        f_c -= term * hc
        if k < k_terms:
            p *= (e + k) / (c1 + k) * z
            he += 1.0 / (e + k)
            hc += 1.0 / (c1 + k)
    return _Series(f=f, f_z=f_z, f_e=f_e, f_c=f_c)


def _iterated_series(e: FloatArray, c: FloatArray, z: FloatArray) -> _Series:
    """The series term by term; rows leave the loop as they converge.  A geometric bound
    on the remainder is added for rows that reach the term limit."""
    n = z.shape[0]
    f = np.ones(n)
    f_z = np.zeros(n)
    f_e = np.zeros(n)
    f_c = np.zeros(n)
    # p_k = (e)_k / (c+1)_k z^(k-1)  for k >= 1, so term_k = p_k z
    idx = np.arange(n)
    p = e / (c + 1.0)
    he = 1.0 / e  # sum_{j<k} 1/(e+j)
    hc = 1.0 / (c + 1.0)  # sum_{j<k} 1/(c+1+j)
    ee, cc, zz = e, c, z
    k = 1
    while idx.size:
        term = p * zz
        f[idx] += term
        f_z[idx] += k * p
        f_e[idx] += term * he
        f_c[idx] -= term * hc
        ratio = (ee + k) / (cc + 1.0 + k) * zz
        done = term * ratio <= _TOL * f[idx]
        if k >= _MAX_TERMS:
            # remainder bounded by term * z / (1 - z); add it as the estimate
            tail = term * zz / np.maximum(1.0 - zz, 1e-300)
            f[idx] += tail
            break
        if np.any(done):
            keep = ~done
            idx = idx[keep]
            p, he, hc = p[keep], he[keep], hc[keep]
            ee, cc, zz, ratio = ee[keep], cc[keep], zz[keep], ratio[keep]
        p = p * (ee + k) / (cc + 1.0 + k) * zz
        he = he + 1.0 / (ee + k)
        hc = hc + 1.0 / (cc + 1.0 + k)
        k += 1
    return _Series(f=f, f_z=f_z, f_e=f_e, f_c=f_c)


@dataclass(frozen=True)
class _LogG:
    value: FloatArray
    d_r: FloatArray
    d_alpha: FloatArray
    d_s: FloatArray
    d_beta: FloatArray


def _log_g(r: float, alpha: float, s: float, beta: float, x: FloatArray, tau: FloatArray) -> _LogG:
    """log G(tau) and its derivatives with respect to (r, alpha, s, beta)."""
    c = r + s + x
    la = np.log(alpha + tau)
    lb = np.log(beta + tau)
    if alpha >= beta:
        # log G = -(r+x) log(alpha+tau) - s log(beta+tau) - log c + log F(e=r+x)
        z = (alpha - beta) / (alpha + tau)
        e = r + x
        ser = hyp_series(e, c, z)
        inv_f = 1.0 / ser.f
        fz = ser.f_z * inv_f
        value = -e * la - s * lb - np.log(c) + np.log(ser.f)
        d_r = -la - 1.0 / c + (ser.f_e + ser.f_c) * inv_f
        d_s = -lb - 1.0 / c + ser.f_c * inv_f
        d_alpha = -e / (alpha + tau) + fz * (beta + tau) / (alpha + tau) ** 2
        d_beta = -s / (beta + tau) - fz / (alpha + tau)
    else:
        # log G = -(r+x-1) log(alpha+tau) - (s+1) log(beta+tau) - log c + log F(e=s+1)
        z = (beta - alpha) / (beta + tau)
        e = np.full_like(x, s + 1.0)
        ser = hyp_series(e, c, z)
        inv_f = 1.0 / ser.f
        fz = ser.f_z * inv_f
        value = -(r + x - 1.0) * la - (s + 1.0) * lb - np.log(c) + np.log(ser.f)
        d_r = -la - 1.0 / c + ser.f_c * inv_f
        d_s = -lb - 1.0 / c + (ser.f_e + ser.f_c) * inv_f
        d_alpha = -(r + x - 1.0) / (alpha + tau) - fz / (beta + tau)
        d_beta = -(s + 1.0) / (beta + tau) + fz * (alpha + tau) / (beta + tau) ** 2
    return _LogG(value=value, d_r=d_r, d_alpha=d_alpha, d_s=d_s, d_beta=d_beta)


@dataclass(frozen=True)
class _Parts:
    """Per-row pieces of the likelihood, shared by fitting and prediction."""

    log_e: FloatArray
    lg1: _LogG
    lg2: _LogG
    log_total: FloatArray  # log(E + s (G(t_x) - G(T)))
    share_e: FloatArray  # E / total: P(alive)
    share_1: FloatArray  # s G(t_x) / total
    share_2: FloatArray  # s G(T) / total


def _parts(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> _Parts:
    log_e = -(r + x) * np.log(alpha + big_t) - s * np.log(beta + big_t)
    lg1 = _log_g(r, alpha, s, beta, x, t_x)
    lg2 = _log_g(r, alpha, s, beta, x, big_t)
    ls = math.log(s)
    top = np.maximum(log_e, ls + lg1.value)
    e_e = np.exp(log_e - top)
    e_1 = np.exp(ls + lg1.value - top)
    e_2 = np.exp(ls + lg2.value - top)
    # G(t_x) >= G(T) analytically; rounding can flip the sign when t_x == T.
    total = e_e + np.maximum(e_1 - e_2, 0.0)
    return _Parts(
        log_e=log_e,
        lg1=lg1,
        lg2=lg2,
        log_total=top + np.log(total),
        share_e=e_e / total,
        share_1=e_1 / total,
        share_2=e_2 / total,
    )


@dataclass(frozen=True)
class _Data:
    x: FloatArray
    t_x: FloatArray
    big_t: FloatArray
    w: FloatArray
    ux: FloatArray
    wx: FloatArray
    n_total: float
    n_rows: int


def _prepare(comp: Compressed) -> _Data:
    x, t_x, big_t = comp.columns
    ux, inv = np.unique(x, return_inverse=True)
    wx = np.bincount(inv, weights=comp.weights, minlength=ux.shape[0]).astype(np.float64)
    return _Data(
        x=x,
        t_x=t_x,
        big_t=big_t,
        w=comp.weights,
        ux=ux,
        wx=wx,
        n_total=comp.total_weight,
        n_rows=comp.n_rows,
    )


def _negloglik(log_params: FloatArray, d: _Data) -> tuple[float, FloatArray]:
    r, alpha, s, beta = (float(v) for v in np.exp(log_params))
    n = d.n_total
    # prefactor: log Gamma(r+x) - log Gamma(r) + r log alpha + s log beta
    ll = dot(d.wx, gammaln(r + d.ux)) + n * (-gammaln(r) + r * math.log(alpha) + s * math.log(beta))
    g_r = dot(d.wx, digamma(r + d.ux)) + n * (-digamma(r) + math.log(alpha))
    g_alpha = n * r / alpha
    g_s = n * math.log(beta)
    g_beta = n * s / beta

    pt = _parts(r, alpha, s, beta, d.x, d.t_x, d.big_t)
    w = d.w
    ll += dot(w, pt.log_total)
    we, w1, w2 = w * pt.share_e, w * pt.share_1, w * pt.share_2
    la_t = np.log(alpha + d.big_t)
    lb_t = np.log(beta + d.big_t)
    # d log E
    g_r -= dot(we, la_t)
    g_alpha -= dot(we, (r + d.x) / (alpha + d.big_t))
    g_s -= dot(we, lb_t)
    g_beta -= s * dot(we, 1.0 / (beta + d.big_t))
    # d log[s (G1 - G2)]: s G1 dlogG1 - s G2 dlogG2 + (G1 - G2) s * (1/s) on s
    g1, g2 = pt.lg1, pt.lg2
    g_r += dot(w1, g1.d_r) - dot(w2, g2.d_r)
    g_alpha += dot(w1, g1.d_alpha) - dot(w2, g2.d_alpha)
    g_s += dot(w1, g1.d_s) - dot(w2, g2.d_s) + float((w1 - w2).sum()) / s
    g_beta += dot(w1, g1.d_beta) - dot(w2, g2.d_beta)
    grad = np.array([g_r * r, g_alpha * alpha, g_s * s, g_beta * beta], dtype=np.float64)
    if not math.isfinite(ll):
        return math.inf, np.zeros(4)
    return -ll / n, -grad / n


def _start(d: _Data) -> FloatArray:
    total_x = dot(d.wx, d.ux)
    total_t = dot(d.w, d.big_t)
    rate = max(total_x / max(total_t, 1e-12), 1e-6)
    mean_t = total_t / d.n_total
    return np.log(np.array([1.0, 1.0 / rate, 1.0, mean_t], dtype=np.float64))


@dataclass(frozen=True)
class ParetoNBD:
    """A fitted (or given) Pareto/NBD model."""

    r: float
    alpha: float
    s: float
    beta: float
    fit_result: FitResult | None = None

    @property
    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "s": self.s, "beta": self.beta}

    @classmethod
    def fit(
        cls,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        weights: ArrayLike | None = None,
        standard_errors: bool = True,
    ) -> ParetoNBD:
        """Maximum-likelihood fit. Never raises on non-convergence: see ``fit_result``."""
        started = time.perf_counter()
        comp = compressed_rft(frequency, recency, T, weights)
        with np.errstate(over="ignore", under="ignore"):
            result = fit_compressed(
                "pareto_nbd",
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
        r, alpha, s, beta = (result.params[n] for n in PARAM_NAMES)
        return cls(r=r, alpha=alpha, s=s, beta=beta, fit_result=result)

    def _check(self) -> None:
        if not all(math.isfinite(v) and v > 0 for v in (self.r, self.alpha, self.s, self.beta)):
            reason = self.fit_result.convergence.reason if self.fit_result else "bad parameters"
            raise ModelError(f"Pareto/NBD parameters are not usable: {reason}")

    def _arrays(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        self._check()
        return rft_arrays(frequency, recency, T)

    def log_likelihood(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> FloatArray:
        x, t_x, big_t = self._arrays(frequency, recency, T)
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        pt = _parts(r, alpha, s, beta, x, t_x, big_t)
        pre = gammaln(r + x) - gammaln(r) + r * math.log(alpha) + s * math.log(beta)
        return np.asarray(pre + pt.log_total, dtype=np.float64)

    def probability_alive(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> FloatArray:
        x, t_x, big_t = self._arrays(frequency, recency, T)
        pt = _parts(self.r, self.alpha, self.s, self.beta, x, t_x, big_t)
        return np.asarray(np.clip(pt.share_e, 0.0, 1.0), dtype=np.float64)

    def conditional_expected_purchases(
        self,
        t: ArrayLike,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected repeat purchases in (T, T + t].

        (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)] P(alive)
        """
        x, t_x, big_t = self._arrays(frequency, recency, T)
        tt = np.broadcast_to(as_float_array(t, "t"), x.shape)
        alive = self.probability_alive(x, t_x, big_t)
        return np.asarray(
            alive * _rate_integral(self.r + x, self.alpha, self.s, self.beta, big_t, tt),
            dtype=np.float64,
        )

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """E[X(t)] for a customer acquired at time 0."""
        self._check()
        tt = as_float_array(t, "t")
        return np.asarray(
            _rate_integral(self.r, self.alpha, self.s, self.beta, np.zeros_like(tt), tt),
            dtype=np.float64,
        )


def _rate_integral(
    shape: FloatArray | float,
    alpha: float,
    s: float,
    beta: float,
    start: FloatArray,
    t: FloatArray,
) -> FloatArray:
    """shape/(alpha+start) * (beta+start) * [1 - ((beta+start)/(beta+start+t))^(s-1)]/(s-1)."""
    log1p_ratio = np.log1p(t / (beta + start))
    if abs(s - 1.0) < 1e-10:
        factor = log1p_ratio
    else:
        factor = -np.expm1(-(s - 1.0) * log1p_ratio) / (s - 1.0)
    return np.asarray(shape * (beta + start) / (alpha + start) * factor, dtype=np.float64)
