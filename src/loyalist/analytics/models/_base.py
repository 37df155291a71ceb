"""Shared machinery of the maximum-likelihood fits.

Every model supplies ``negloglik(log_params) -> (value, gradient)``: the negative
log-likelihood of the (weighted) data and its analytic gradient with respect to the
logarithm of each parameter.  Parameters are optimised on the log scale (they are all
positive) with L-BFGS-B; standard errors come from a central-difference Hessian of the
analytic gradient, mapped back to the natural scale with the delta method.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import polars as pl
import pyarrow.compute as pc
from numpy.typing import NDArray
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from loyalist.analytics._typing import FloatArray, IntArray

Objective = Callable[[FloatArray], tuple[float, FloatArray]]

# Log-parameters are kept inside this box: exp(+-20) covers 2e-9 .. 5e8, far wider than any
# meaningful purchase-rate or dropout heterogeneity, and keeps the optimiser away from
# overflow in the gamma functions.
_LOG_BOUND = 20.0


@dataclass(frozen=True)
class ConvergenceReport:
    """What the optimiser did and whether the answer can be trusted."""

    converged: bool
    reason: str
    iterations: int
    function_evaluations: int
    gradient_norm: float
    at_bound: tuple[str, ...] = ()
    hessian_positive_definite: bool = True
    warm_start_rows: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "converged": self.converged,
            "reason": self.reason,
            "iterations": self.iterations,
            "function_evaluations": self.function_evaluations,
            "gradient_norm": self.gradient_norm,
            "at_bound": list(self.at_bound),
            "hessian_positive_definite": self.hessian_positive_definite,
            "warm_start_rows": self.warm_start_rows,
        }


@dataclass(frozen=True)
class FitResult:
    """Parameters, log-likelihood, standard errors and the convergence report of a fit."""

    model: str
    params: dict[str, float]
    log_likelihood: float
    standard_errors: dict[str, float]
    n_customers: int
    n_unique_rows: int
    convergence: ConvergenceReport
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return self.convergence.converged

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "params": dict(self.params),
            "log_likelihood": self.log_likelihood,
            "standard_errors": dict(self.standard_errors),
            "n_customers": self.n_customers,
            "n_unique_rows": self.n_unique_rows,
            "convergence": self.convergence.to_dict(),
            "seconds": self.seconds,
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


def dot(a: FloatArray, b: FloatArray) -> float:
    """Inner product of two vectors without BLAS.

    ``a @ b`` goes to a multi-threaded BLAS whose threads spin and wait on a busy machine
    (a 20,000-row likelihood took 1 ms or 150 ms at random); einsum's own loop is as fast
    on one core and always the same.
    """
    return float(np.einsum("i,i->", a, b))


def unidentified(names: Sequence[str], reason: str) -> ConvergenceReport:
    """The report of a fit that was not attempted because the data cannot identify it."""
    return ConvergenceReport(
        converged=False,
        reason=reason,
        iterations=0,
        function_evaluations=0,
        gradient_norm=math.nan,
        at_bound=tuple(names),
        hessian_positive_definite=False,
    )


@dataclass(frozen=True)
class Compressed:
    """Distinct data rows (columns) and how many customers share each."""

    columns: tuple[FloatArray, ...]
    weights: FloatArray

    @property
    def n_rows(self) -> int:
        return int(self.weights.shape[0])

    @property
    def total_weight(self) -> float:
        return float(self.weights.sum())


_MIX = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
    np.uint64(0x27D4EB2F165667C5),
)


def row_hash(columns: Sequence[FloatArray]) -> NDArray[np.uint64]:
    """A 64-bit hash of each row of float columns (bits mixed with odd multipliers and a
    splitmix64 finaliser)."""
    h = np.zeros(columns[0].shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, col in enumerate(columns):
            bits = np.ascontiguousarray(col, dtype=np.float64).view(np.uint64)
            h ^= bits * _MIX[i % len(_MIX)]
            h = (h ^ (h >> np.uint64(31))) * _MIX[(i + 1) % len(_MIX)]
        h ^= h >> np.uint64(29)
    return h


def dictionary_codes(values: NDArray[np.uint64] | pl.Series) -> IntArray:
    """Codes 0, 1, ... of the distinct values, numbered in order of first appearance
    (an Arrow hash table; going through Polars keeps pyarrow from importing pandas)."""
    series = values if isinstance(values, pl.Series) else pl.Series(values)
    encoded = pc.dictionary_encode(series.to_arrow())
    indices = pl.from_arrow(encoded.indices)
    assert isinstance(indices, pl.Series)
    return indices.to_numpy().astype(np.int64)


def first_rows(codes: IntArray) -> IntArray:
    """For codes numbered 0, 1, ... in order of first appearance, the row where each first
    appears (where the running maximum first reaches it)."""
    running = np.maximum.accumulate(codes)
    starts = np.flatnonzero(running[1:] != running[:-1]) + 1
    rows = np.concatenate(([0], starts)).astype(np.int64)
    assert rows.shape[0] == int(running[-1]) + 1
    return rows


def compress(*columns: FloatArray, weights: FloatArray | None = None) -> Compressed:
    """Collapse identical rows of ``columns`` into one row with a weight (customer count).

    Rows are hashed and grouped by hash (in hash order, so a fit is reproducible); every
    row is then compared with the first row of its group, so a hash collision cannot merge
    different rows (if one ever happens the rows are grouped exactly, more slowly, by
    Polars).
    """
    cols = [np.ascontiguousarray(c, dtype=np.float64) for c in columns]
    n = cols[0].shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n == 0:
        return Compressed(columns=tuple(cols), weights=w)
    # -0.0 and 0.0 are equal values with different bits
    cols = [c + 0.0 if np.any(np.signbit(c) & (c == 0)) else c for c in cols]
    _, first, codes = np.unique(row_hash(cols), return_index=True, return_inverse=True)
    if any(np.any(c[first][codes] != c) for c in cols):
        return _compress_exact(cols, w)
    return Compressed(
        columns=tuple(c[first] for c in cols),
        weights=np.bincount(codes, weights=w, minlength=first.shape[0]).astype(np.float64),
    )


def _compress_exact(cols: Sequence[FloatArray], w: FloatArray) -> Compressed:
    names = [f"c{i}" for i in range(len(cols))]
    frame = pl.DataFrame(dict(zip(names, cols, strict=True))).with_columns(pl.Series("_w", w))
    grouped = frame.group_by(names, maintain_order=True).agg(pl.col("_w").sum())
    return Compressed(
        columns=tuple(grouped[name].to_numpy().astype(np.float64, copy=False) for name in names),
        weights=grouped["_w"].to_numpy().astype(np.float64, copy=False),
    )


def subsample(data: Compressed, rows: int, seed: int = 12345) -> Compressed:
    """A random subset of about ``rows`` customers (weighted draw), used for warm starts."""
    rng = np.random.default_rng(seed)
    total = data.total_weight
    counts = rng.binomial(data.weights.astype(np.int64), min(1.0, rows / total))
    keep = counts > 0
    return Compressed(
        columns=tuple(col[keep] for col in data.columns),
        weights=counts[keep].astype(np.float64),
    )


def numerical_hessian(objective: Objective, point: FloatArray, step: float = 1e-6) -> FloatArray:
    """Forward differences of the analytic gradient (k + 1 gradient calls); symmetrised."""
    k = point.shape[0]
    hess = np.empty((k, k), dtype=np.float64)
    base = objective(point)[1]
    for i in range(k):
        up = point.copy()
        up[i] += step
        hess[:, i] = (objective(up)[1] - base) / step
    return np.asarray(0.5 * (hess + hess.T), dtype=np.float64)


def standard_errors(
    objective: Objective, log_params: FloatArray, names: Sequence[str], n_total: float
) -> tuple[dict[str, float], bool]:
    """Delta-method standard errors on the natural scale from the log-scale Hessian.

    ``objective`` is the *mean* negative log-likelihood over ``n_total`` customers, so the
    observed information is ``n_total`` times its Hessian.
    """
    hess = numerical_hessian(objective, log_params)
    try:
        cov_log = np.linalg.inv(hess) / n_total
        eig = np.linalg.eigvalsh(hess)
        positive = bool(np.all(eig > 0))
    except np.linalg.LinAlgError:
        return {n: math.nan for n in names}, False
    theta = np.exp(log_params)
    var = np.diag(cov_log) * theta**2
    ses = {
        n: (float(math.sqrt(v)) if v > 0 and positive else math.nan)
        for n, v in zip(names, var, strict=True)
    }
    return ses, positive


def maximise(
    objective: Objective,
    start: FloatArray,
    names: Sequence[str],
    *,
    n_total: float,
    max_iter: int = 500,
    want_standard_errors: bool = True,
) -> tuple[FloatArray, float, dict[str, float], ConvergenceReport]:
    """Minimise ``objective`` (a mean negative log-likelihood) from ``start`` (log scale).

    Returns the log-parameters, the mean negative log-likelihood, standard errors and a
    report.  Never raises on non-convergence: the report says why.
    """
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(names)
    reason = ""
    try:
        # L-BFGS-B's small matrix products go to BLAS, whose threads wait on one another
        # for milliseconds per iteration on a busy machine: one thread is faster here.
        with threadpool_limits(limits=1, user_api="blas"):
            res = minimize(
                objective,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": max_iter, "ftol": 1e-13, "gtol": 1e-9, "maxcor": 20},
            )
    except (FloatingPointError, ValueError, ArithmeticError) as exc:
        report = ConvergenceReport(
            converged=False,
            reason=f"optimiser stopped: {type(exc).__name__}: {exc}",
            iterations=0,
            function_evaluations=0,
            gradient_norm=math.nan,
        )
        nan = np.full(len(names), np.nan)
        return nan, math.nan, {n: math.nan for n in names}, report
    x = np.asarray(res.x, dtype=np.float64)
    value = float(res.fun)
    grad = np.asarray(res.jac, dtype=np.float64)
    gnorm = float(np.max(np.abs(grad))) if grad.size else 0.0
    at_bound = tuple(n for n, v in zip(names, x, strict=False) if abs(v) >= _LOG_BOUND - 1e-6)
    finite = math.isfinite(value) and bool(np.all(np.isfinite(x)))
    # L-BFGS-B reports "ABNORMAL" line-search ends when the objective is flat to machine
    # precision; accept those when the gradient is small.
    converged = finite and (bool(res.success) or gnorm < 1e-5) and not at_bound
    if not finite:
        reason = "log-likelihood is not finite at the solution"
    elif at_bound:
        reason = (
            "parameter(s) ran to the edge of the search box ("
            + ", ".join(at_bound)
            + "): the data do not identify them (e.g. no repeat purchases or no dropout)"
        )
    elif not converged:
        reason = f"optimiser did not converge: {res.message} (max |gradient| {gnorm:.3g})"
    else:
        reason = str(res.message)
    ses: dict[str, float] = {n: math.nan for n in names}
    positive = True
    if want_standard_errors and finite:
        ses, positive = standard_errors(objective, x, names, n_total)
        if not positive and converged:
            converged = False
            reason = "Hessian is not positive definite at the solution (flat likelihood)"
    report = ConvergenceReport(
        converged=converged,
        reason=reason,
        iterations=int(res.nit),
        function_evaluations=int(res.nfev),
        gradient_norm=gnorm,
        at_bound=at_bound,
        hessian_positive_definite=positive,
    )
    return x, value, ses, report


D = TypeVar("D")

NO_REPEAT_BUYERS = (
    "no customer made a repeat purchase: the purchase rate and the dropout process "
    "cannot be estimated from these data"
)


def fit_compressed(
    model: str,
    names: Sequence[str],
    comp: Compressed,
    *,
    prepare: Callable[[Compressed], D],
    negloglik: Callable[[FloatArray, D], tuple[float, FloatArray]],
    start: Callable[[D], FloatArray],
    started: float,
    warm_start_rows: int,
    warm_start_sample: int,
    want_standard_errors: bool,
    unidentified_reason: str | None = None,
) -> FitResult:
    """The common fitting procedure of the models: optional warm start on a random subset
    of the customers, then maximum likelihood on all the (compressed) data."""
    n_total = comp.total_weight
    if unidentified_reason is not None:
        nan = {n: math.nan for n in names}
        return FitResult(
            model=model,
            params=dict(nan),
            log_likelihood=math.nan,
            standard_errors=dict(nan),
            n_customers=round(n_total),
            n_unique_rows=comp.n_rows,
            convergence=unidentified(names, unidentified_reason),
            seconds=time.perf_counter() - started,
        )
    data = prepare(comp)
    x0 = start(data)
    warm: int | None = None
    if comp.n_rows > warm_start_rows:
        # A fit on a random subset lands near the optimum cheaply; the fit on all the data
        # then needs only a few iterations.
        sub_comp = subsample(comp, warm_start_sample)
        sub = prepare(sub_comp)
        sx, _, _, _ = maximise(
            lambda p: negloglik(p, sub),
            x0,
            names,
            n_total=sub_comp.total_weight,
            want_standard_errors=False,
        )
        if np.all(np.isfinite(sx)):
            x0 = sx
            warm = round(sub_comp.total_weight)
    logp, value, ses, report = maximise(
        lambda p: negloglik(p, data),
        x0,
        names,
        n_total=n_total,
        want_standard_errors=want_standard_errors,
    )
    if warm is not None:
        report = replace(report, warm_start_rows=warm)
    params = {n: float(v) for n, v in zip(names, np.exp(logp), strict=True)}
    return FitResult(
        model=model,
        params=params,
        log_likelihood=-value * n_total,
        standard_errors=ses,
        n_customers=round(n_total),
        n_unique_rows=comp.n_rows,
        convergence=report,
        seconds=time.perf_counter() - started,
    )
