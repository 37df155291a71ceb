"""Lifetime-value models: Loyalist against lifetimes and pymc-marketing, in one run.

What it does (see docs/analytics-models.md, "Benchmark"):
  1. makes sure the peers are installed, each in its own environment under
     ``benchmarks/.venv-peers/`` (created with pip on the first run; a peer that fails to
     install or to run is reported and the run goes on without it);
  2. prepares three datasets: the CDNOW sample (2,357 customers) and CDNOW master (23,570)
     summarised over the 39-week calibration ending 1997-09-30 in weeks, and 1,000,000
     customers simulated from the BG/NBD and Gamma-Gamma processes (about 2.8 million
     transactions, summarised in weeks);
  3. times the calibration summary of the 2.8 million transactions: Loyalist's
     ``summarise``, a pandas group-by doing the same, and lifetimes'
     ``summary_data_from_transaction_data``;
  4. fits BG/NBD, Pareto/NBD (CDNOW only) and Gamma-Gamma with Loyalist and with each peer
     (lifetimes' maximum likelihood; pymc-marketing's MAP with flat priors); every peer fit
     runs in a fresh process of its own environment and is timed around the library call;
     the 1M-customer BG/NBD + Gamma-Gamma fit of Loyalist also runs in a fresh process
     that does only that, whose wall time and peak RSS are the headline figures;
  5. evaluates every set of parameters with the same log-likelihood (Loyalist's), so the
     fits are compared on equal terms, and prints each figure beside the peers';
  6. ends with ``RESULT clv_1m_s=<..> clv_1m_rss_mb=<..> speedup_vs_best_peer=<..>``
     (the speed-up is the best peer's 1M BG/NBD + Gamma-Gamma fit time over Loyalist's).

Usage: .venv/bin/python benchmarks/bench_clv.py [--skip-peers] [--peer-timeout 1200]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DATA = BENCH / "data"
PEERS = BENCH / ".venv-peers"
CDNOW = ROOT / "tests" / "data" / "cdnow"
PEER_SCRIPT = BENCH / "peers" / "clv_peer.py"

# What each peer environment gets from PyPI (pinned so that runs compare like with like).
# lifetimes was last released in 2020 and needs the numpy/pandas/scipy of its time.
PEER_SPECS: dict[str, list[str]] = {
    "lifetimes": ["lifetimes==0.11.3", "numpy<2", "pandas<2.2", "scipy<1.13", "psutil"],
    "pymc": ["pymc-marketing==0.19.2", "psutil"],
}
PEER_NAMES = {"lifetimes": "lifetimes 0.11.3", "pymc": "pymc-marketing 0.19.2 (MAP)"}
MODEL_NAMES = {"bgnbd": "BG/NBD", "paretonbd": "Pareto/NBD", "gg": "Gamma-Gamma"}

SIM_CUSTOMERS = 1_000_000
SIM_BGNBD = (0.24, 40.0, 0.8, 4.0)  # per day
SIM_GG = (6.0, 4.0, 150.0)
SIM_SEED = 2026


def log(message: str = "") -> None:
    print(message, flush=True)


def maxrss_mb() -> float:
    """Peak resident memory of this process in MB.

    ``VmHWM`` is the high-water mark of this process's own address space; ``ru_maxrss``
    is not used because Linux carries it over from the parent across fork and exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- peers
def ensure_peer(lib: str) -> Path | None:
    """The Python of the peer's environment, creating it on first use; None if unusable."""
    env = PEERS / lib
    python = env / "bin" / "python"
    marker = env / ".installed"
    if not marker.exists():
        log(f"  installing {lib} into {env.relative_to(ROOT)} (first run only) ...")
        try:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", *PEER_SPECS[lib]],
                check=True,
                timeout=1800,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            marker.write_text(" ".join(PEER_SPECS[lib]) + "\n")
        except (subprocess.SubprocessError, OSError) as exc:
            log(f"  {lib}: installation FAILED ({type(exc).__name__}: {exc}); skipping it")
            return None
    return python


def run_json(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run a child that prints one JSON object on its last line."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"ok": False, "error": f"exit {proc.returncode}: " + " | ".join(tail)[:300]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --------------------------------------------------------------------------- data
@dataclass
class Dataset:
    name: str
    path: Path  # npz with x, t_x, T, m
    customers: int
    x: np.ndarray
    t_x: np.ndarray
    big_t: np.ndarray
    m: np.ndarray


def dataset_from_summary(name: str, summary: Any) -> Dataset:
    x = summary["frequency"].to_numpy().astype(np.float64)
    t_x = summary["recency"].to_numpy().astype(np.float64)
    big_t = summary["T"].to_numpy().astype(np.float64)
    m = summary["monetary_value"].to_numpy().astype(np.float64)
    path = DATA / f"clv_{name}.npz"
    np.savez(path, x=x, t_x=t_x, T=big_t, m=m)
    return Dataset(name, path, x.shape[0], x, t_x, big_t, m)


def cdnow_dataset(name: str, file: str) -> Dataset:
    from loyalist.analytics.io import read_cdnow
    from loyalist.analytics.summary import summarise

    summary = summarise(read_cdnow(CDNOW / file), observation_end="1997-09-30", unit="W")
    return dataset_from_summary(name, summary)


def simulated_transactions() -> Any:
    import polars as pl

    from loyalist.analytics.io import LoadReport, Transactions
    from loyalist.analytics.simulate import simulate_transactions

    cache = DATA / f"sim_tx_{SIM_CUSTOMERS}_{SIM_SEED}.parquet"
    if cache.exists():
        frame = pl.read_parquet(cache)
        return Transactions(frame=frame, report=LoadReport(source=str(cache)))
    tx = simulate_transactions(
        SIM_CUSTOMERS,
        days=730,
        acquisition_days=365,
        bgnbd=SIM_BGNBD,
        gamma_gamma=SIM_GG,
        member_share=0.0,
        seed=SIM_SEED,
    )
    tx.frame.write_parquet(cache)
    return tx


# --------------------------------------------------------------------------- timing
def best_of(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """(best wall seconds, CPU seconds of that run, last result)."""
    best, best_cpu, result = math.inf, math.nan, None
    for _ in range(runs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, best_cpu = wall, time.process_time() - c0
    return best, best_cpu, result


def pandas_summary(frame: Any, end: Any) -> Any:
    """The calibration summary with a plain pandas group-by (the usual hand-written way)."""
    d = frame.assign(day=frame["occurred_at"].dt.floor("D"))
    d = d[d["day"] <= end]
    daily = d.groupby(["customer_id", "day"], sort=True)["amount"].sum().reset_index()
    g = daily.groupby("customer_id", sort=False)
    out = g.agg(
        first=("day", "min"), last=("day", "max"), days=("day", "size"), rev=("amount", "sum")
    )
    out["first_amount"] = g["amount"].first()
    out["frequency"] = out["days"] - 1
    out["recency"] = (out["last"] - out["first"]).dt.days / 7.0
    out["T"] = (end - out["first"]).dt.days / 7.0
    rep = (out["rev"] - out["first_amount"]) / out["frequency"]
    out["monetary_value"] = rep.where(out["frequency"] > 0, 0.0)
    return out


# --------------------------------------------------------------------------- child: our fit
def child_fit(path: str, models: str) -> int:
    """Fresh-process fit used for the 1M headline (time and peak RSS of just that)."""
    from loyalist.analytics.models import BGNBD, GammaGamma, ParetoNBD

    d = np.load(path)
    x, t_x, big_t, m = d["x"], d["t_x"], d["T"], d["m"]
    base_rss = maxrss_mb()
    out: dict[str, Any] = {"ok": True, "fits": {}, "base_rss_mb": base_rss}
    c0 = time.process_time()
    t0 = time.perf_counter()
    for model in models.split(","):
        s0 = time.perf_counter()
        fitted: Any
        if model == "bgnbd":
            fitted = BGNBD.fit(x, t_x, big_t)
        elif model == "paretonbd":
            fitted = ParetoNBD.fit(x, t_x, big_t)
        else:
            fitted = GammaGamma.fit(x, m)
        fr = fitted.fit_result
        out["fits"][model] = {
            "seconds": time.perf_counter() - s0,
            "params": fr.params,
            "converged": fr.converged,
            "unique_rows": fr.n_unique_rows,
        }
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    out["maxrss_mb"] = maxrss_mb()
    print(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- likelihoods
def loglik(model: str, params: dict[str, float], ds: Dataset) -> float:
    """Total log-likelihood of ``params`` on ``ds`` under Loyalist's likelihood."""
    from loyalist.analytics.models import BGNBD, GammaGamma, ParetoNBD

    try:
        if model == "bgnbd":
            bg = BGNBD(params["r"], params["alpha"], params["a"], params["b"])
            return float(bg.log_likelihood(ds.x, ds.t_x, ds.big_t).sum())
        if model == "paretonbd":
            pn = ParetoNBD(params["r"], params["alpha"], params["s"], params["beta"])
            return float(pn.log_likelihood(ds.x, ds.t_x, ds.big_t).sum())
        rep = (ds.x > 0) & (ds.m > 0)
        gg = GammaGamma(params["p"], params["q"], params["gamma"])
        return float(gg.log_likelihood(ds.x[rep], ds.m[rep]).sum())
    except Exception:
        return math.nan


def fmt_params(params: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in params.items())


@dataclass
class Row:
    dataset: str
    model: str
    who: str
    seconds: float
    params: dict[str, float]
    ll: float
    note: str = ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--skip-peers", action="store_true", help="only Loyalist's figures")
    ap.add_argument("--peer-timeout", type=float, default=1200.0, help="seconds per peer run")
    ap.add_argument("--child-fit", nargs=2, metavar=("NPZ", "MODELS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_fit:
        return child_fit(*args.child_fit)

    from loyalist.analytics.models import BGNBD, GammaGamma, ParetoNBD
    from loyalist.analytics.summary import summarise

    DATA.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    log(f"CLV benchmark on {os.cpu_count()} CPUs; load average {load[0]:.1f} at start")
    log(
        "(wall times on a busy machine are longer than CPU times: both are shown where they differ)"
    )

    # 1. peers
    pythons: dict[str, Path] = {}
    if not args.skip_peers:
        log("\n== Peers")
        for lib in PEER_SPECS:
            py = ensure_peer(lib)
            if py is not None:
                pythons[lib] = py
                log(f"  {PEER_NAMES[lib]}: {py.parent.parent.relative_to(ROOT)}")

    # 2. data
    log("\n== Data")
    sample = cdnow_dataset("cdnow_sample", "CDNOW_sample.txt")
    master = cdnow_dataset("cdnow_master", "CDNOW_master.txt")
    log(f"  CDNOW sample: {sample.customers:,} customers; master: {master.customers:,}")
    tx = simulated_transactions()
    n_rows = tx.frame.height
    log(f"  simulated: {SIM_CUSTOMERS:,} customers, {n_rows:,} transactions")

    # 3. summary of 2.8M transactions
    log(f"\n== Calibration summary of {n_rows:,} transactions (target <= 0.3 s)")
    t0 = time.perf_counter()
    summary = summarise(tx, unit="W")
    cold = time.perf_counter() - t0
    warm, warm_cpu, summary = best_of(lambda: summarise(tx, unit="W"), 3)
    log(
        f"  Loyalist summarise: {warm:.3f} s best of 3 (CPU {warm_cpu:.3f} s; "
        f"first call {cold:.3f} s)"
    )
    sim = dataset_from_summary("sim_1m", summary)
    end = summary["T"].max()
    import pandas as pd
    import polars as pl

    pdf = tx.frame.select("customer_id", "occurred_at", "amount").to_pandas()
    end_ts = pd.Timestamp(tx.frame["occurred_at"].max().date())
    p_wall, p_cpu, _ = best_of(lambda f=pdf: pandas_summary(f, end_ts), 3)
    log(f"  pandas group-by:    {p_wall:.3f} s best of 3 (CPU {p_cpu:.3f} s)")
    del pdf
    summary_peer = math.nan
    if "lifetimes" in pythons:
        codes = tx.frame.select(
            pl.col("customer_id").str.slice(1).cast(pl.Int64).alias("c"),
            pl.col("occurred_at").dt.date().cast(pl.Int32).alias("d"),
            "amount",
        )
        path = DATA / "sim_tx_arrays.npz"
        np.savez(
            path,
            customer=codes["c"].to_numpy(),
            day=codes["d"].to_numpy(),
            amount=codes["amount"].to_numpy(),
            end_day=np.array(int(codes["d"].max())),
        )
        res = run_json(
            [str(pythons["lifetimes"]), str(PEER_SCRIPT), "lifetimes", "summary", str(path)],
            args.peer_timeout,
        )
        if res.get("ok"):
            summary_peer = float(res["seconds"])
            log(f"  lifetimes summary_data_from_transaction_data: {summary_peer:.3f} s")
        else:
            log(f"  lifetimes summary: FAILED ({res.get('error')})")
    log(f"  (summary: {sim.customers:,} customers, T up to {end:.1f} weeks)")

    # 4. fits
    rows: list[Row] = []
    datasets = (sample, master, sim)
    plans = {
        "cdnow_sample": ("bgnbd", "paretonbd", "gg"),
        "cdnow_master": ("bgnbd", "paretonbd", "gg"),
        "sim_1m": ("bgnbd", "gg"),
    }
    fitters: dict[str, Callable[[Dataset], Any]] = {
        "bgnbd": lambda ds: BGNBD.fit(ds.x, ds.t_x, ds.big_t),
        "paretonbd": lambda ds: ParetoNBD.fit(ds.x, ds.t_x, ds.big_t),
        "gg": lambda ds: GammaGamma.fit(ds.x, ds.m),
    }
    headline: dict[str, Any] = {}
    for ds in datasets:
        log(f"\n== Fits on {ds.name} ({ds.customers:,} customers)")
        for model in plans[ds.name]:
            if ds.name == "sim_1m":
                continue  # the 1M fits of Loyalist run in a child process below
            runs = 7 if ds.name == "cdnow_sample" else 3
            wall, cpu, fitted = best_of(lambda m=model, d=ds: fitters[m](d), runs)
            fr = fitted.fit_result
            rows.append(Row(ds.name, model, "Loyalist", wall, fr.params, fr.log_likelihood))
            log(
                f"  Loyalist {MODEL_NAMES[model]}: {wall * 1000:.1f} ms best of {runs} "
                f"(CPU {cpu * 1000:.1f} ms), converged={fr.converged}"
            )
        if ds.name == "sim_1m":
            res = run_json(
                [sys.executable, __file__, "--child-fit", str(ds.path), "bgnbd,gg"], 1800
            )
            if not res.get("ok"):
                log(f"  Loyalist 1M fit FAILED: {res.get('error')}")
                return 1
            headline = res
            for model, fit in res["fits"].items():
                ll = loglik(model, fit["params"], ds)
                rows.append(Row(ds.name, model, "Loyalist", fit["seconds"], fit["params"], ll))
                log(
                    f"  Loyalist {MODEL_NAMES[model]}: {fit['seconds']:.3f} s "
                    f"({fit['unique_rows']:,} distinct rows), converged={fit['converged']}"
                )
            log(
                f"  Loyalist BG/NBD + Gamma-Gamma in a fresh process: {res['seconds']:.3f} s "
                f"wall, {res['cpu_seconds']:.3f} s CPU, peak RSS {res['maxrss_mb']:.0f} MB "
                f"(of which {res['base_rss_mb']:.0f} MB is the interpreter and libraries "
                "before the fit)  [targets: <= 1.0 s, <= 300 MB]"
            )
        for lib, py in pythons.items():
            for model in plans[ds.name]:
                res = run_json(
                    [str(py), str(PEER_SCRIPT), lib, model, str(ds.path)], args.peer_timeout
                )
                if not res.get("ok"):
                    log(f"  {PEER_NAMES[lib]} {MODEL_NAMES[model]}: FAILED ({res.get('error')})")
                    rows.append(Row(ds.name, model, lib, math.nan, {}, math.nan, "failed"))
                    continue
                ll = loglik(model, res["params"], ds)
                rows.append(
                    Row(
                        ds.name,
                        model,
                        lib,
                        float(res["seconds"]),
                        res["params"],
                        ll,
                        f"peak RSS {res['maxrss_mb']:.0f} MB",
                    )
                )
                log(
                    f"  {PEER_NAMES[lib]} {MODEL_NAMES[model]}: {res['seconds']:.3f} s, "
                    f"peak RSS {res['maxrss_mb']:.0f} MB"
                )

    # 5. comparison
    log("\n== Log-likelihood of every fit under the same likelihood (higher is better)")
    all_ok = True
    for ds in datasets:
        for model in plans[ds.name]:
            mine = [r for r in rows if r.dataset == ds.name and r.model == model]
            ours = next(r for r in mine if r.who == "Loyalist")
            log(f"  {ds.name} {MODEL_NAMES[model]}:")
            for r in mine:
                who = "Loyalist" if r.who == "Loyalist" else PEER_NAMES[r.who]
                if r.note == "failed":
                    log(f"    {who:<30} failed")
                    continue
                diff = ours.ll - r.ll
                verdict = ""
                if r.who != "Loyalist":
                    tol = 1e-9 * abs(r.ll)
                    better = diff >= -tol
                    all_ok &= better
                    if abs(diff) <= tol:
                        word = "equal"
                    elif diff > 0:
                        word = f"Loyalist better by {diff:.4f}"
                    else:
                        word = f"Loyalist WORSE by {-diff:.4f}"
                    verdict = f"  {word}; Loyalist {r.seconds / ours.seconds:.1f}x faster"
                log(
                    f"    {who:<30} LL {r.ll:.4f}  {r.seconds:.4f} s  "
                    f"{fmt_params(r.params)}{verdict}"
                )
    log(f"  Loyalist's log-likelihood equal or better on every dataset: {all_ok}")

    # 6. headline
    log("\n== Targets")
    sample_bg = next(r for r in rows if r.dataset == "cdnow_sample" and r.model == "bgnbd")
    sample_pn = next(r for r in rows if r.dataset == "cdnow_sample" and r.model == "paretonbd")
    sample_bg_gg = sample_bg.seconds + next(
        r.seconds for r in rows if r.dataset == "cdnow_sample" and r.model == "gg"
    )
    log(f"  CDNOW sample BG/NBD fit: {sample_bg.seconds * 1000:.1f} ms (target <= 10 ms)")
    log(f"  CDNOW sample BG/NBD + Gamma-Gamma: {sample_bg_gg * 1000:.1f} ms")
    log(f"  CDNOW sample Pareto/NBD fit: {sample_pn.seconds:.3f} s (target <= 0.1 s)")
    log(f"  summary of {n_rows:,} rows: {warm:.3f} s (target <= 0.3 s)")
    clv_s = float(headline["seconds"])
    rss = float(headline["maxrss_mb"])
    log(f"  1M BG/NBD + Gamma-Gamma: {clv_s:.3f} s, {rss:.0f} MB (targets <= 1.0 s, <= 300 MB)")
    peer_1m = []
    for lib in pythons:
        secs = [r.seconds for r in rows if r.dataset == "sim_1m" and r.who == lib]
        if len(secs) == 2 and all(math.isfinite(s) for s in secs):
            peer_1m.append((sum(secs), lib))
            log(f"  {PEER_NAMES[lib]} 1M BG/NBD + Gamma-Gamma: {sum(secs):.3f} s")
    if peer_1m:
        best, lib = min(peer_1m)
        speedup = best / clv_s
        log(f"  best peer on 1M: {PEER_NAMES[lib]} ({best:.3f} s): speed-up {speedup:.1f}x")
    else:
        speedup = math.nan
        log("  no peer finished the 1M fits: speed-up not measured")
    load = os.getloadavg()
    log(f"  load average {load[0]:.1f} at the end")
    log(f"RESULT clv_1m_s={clv_s:.3f} clv_1m_rss_mb={rss:.0f} speedup_vs_best_peer={speedup:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
