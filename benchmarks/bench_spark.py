"""Analytics at scale: the Spark engine (local mode) against the local (polars) engine.

What it does (see docs/benchmarks.md, "Analytics on Spark"):
  1. generates N simulated customers with the existing simulator
     (:func:`loyalist.analytics.simulate.simulate_transactions`, about 10 transactions per
     customer with the rates below) as Parquet, streamed: CHUNK customers at a time, each
     chunk one Parquet part (canonical columns + ``seq``), never all in memory;
  2. for each engine, in a fresh process per (engine, size), runs the stages
     summary/RFM, cohorts, KPIs (the last 30 days), CLV fit (BG/NBD + Gamma-Gamma) and
     scoring (P(alive), expected purchases, CLV for every customer), and reports per stage
     the wall time and the peak resident memory of the process and its children (the JVM
     for Spark), sampled every 50 ms;
  3. the local engine runs until a size fails (out of memory, error) or exceeds
     --local-timeout: that is "where the local engine stops";
  4. ends with ``RESULT spark_max_customers=<..> spark_max_s=<..> local_max_customers=<..>``.

Usage: .venv/bin/python benchmarks/bench_spark.py [--sizes 100000,1000000,10000000]
       [--engines spark,local] [--local-timeout 1800] [--master local[2]]
       [--memory-limit-gb 16]
The machine's load average is printed with every figure (the bench machine is shared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "spark"
CHUNK = 250_000
# BG/NBD rates giving about 10 transactions per customer over two years (10.06 measured on
# 250,000 customers), so 10 M customers are the 100 M transactions
BGNBD = (0.75, 40.0, 0.3, 6.0)


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.1f}/{b:.1f}/{c:.1f}"


def generate(n: int, out: Path) -> tuple[int, float]:
    """Write n customers as Parquet parts under ``out`` (skipped when already there)."""
    import polars as pl

    from loyalist.analytics.simulate import simulate_transactions

    marker = out / "_DONE"
    if marker.exists():
        info = json.loads(marker.read_text())
        return int(info["rows"]), float(info["seconds"])
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = 0
    for part, first in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - first)
        tx = simulate_transactions(size, seed=1000 + part, bgnbd=BGNBD)
        frame = (
            tx.frame.select(
                pl.format("P{}-{}", pl.lit(part), pl.col("customer_id")).alias("customer_id"),
                "occurred_at",
                "amount",
            )
            .with_row_index("seq", offset=rows)
            .with_columns(pl.col("seq").cast(pl.Int64))
        )
        frame.write_parquet(out / f"part-{part:05d}.parquet")
        rows += frame.height
        del tx, frame
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps({"rows": rows, "seconds": seconds}))
    return rows, seconds


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants, in bytes (0 once it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


class PeakRSS:
    """Peak resident memory of this process and its descendants, sampled in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _total(self) -> int:
        return tree_rss(os.getpid())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(0.05)

    def reset(self) -> None:
        self.peak = self._total()

    def stop(self) -> None:
        self._stop.set()


def run_stages(engine: str, path: Path, master: str, driver_memory: str) -> list[dict[str, Any]]:
    """Run in a child process: each stage's wall time and peak RSS."""
    meter = PeakRSS()
    results: list[dict[str, Any]] = []

    def stage(name: str, fn: Callable[[], object]) -> object:
        meter.reset()
        t = time.perf_counter()
        value = fn()
        results.append(
            {
                "stage": name,
                "seconds": round(time.perf_counter() - t, 2),
                "peak_rss_mb": round(meter.peak / 2**20),
                "load": load(),
            }
        )
        print(json.dumps({"engine": engine, **results[-1]}), file=sys.stderr, flush=True)
        return value

    if engine == "local":
        import polars as pl

        from loyalist.analytics.clv import fit_clv
        from loyalist.analytics.cohorts import cohort_table
        from loyalist.analytics.io import LoadReport, Transactions
        from loyalist.analytics.kpis import compute_kpis
        from loyalist.analytics.models import BGNBD, GammaGamma
        from loyalist.analytics.rfm import rfm_scores
        from loyalist.analytics.summary import summarise

        def read() -> Transactions:
            frame = pl.read_parquet(path / "*.parquet").drop("seq")
            return Transactions(frame=frame, report=LoadReport("bench", frame.height, frame.height))

        tx = stage("read", read)
        assert isinstance(tx, Transactions)
        summ = stage("summary", lambda: summarise(tx, unit="W"))
        stage("rfm", lambda: rfm_scores(tx).height)
        stage("cohorts", lambda: cohort_table(tx).height)
        stage("kpis", lambda: compute_kpis(tx).overall["revenue"])
        assert isinstance(summ, pl.DataFrame)

        def fit() -> object:
            x = summ["frequency"].to_numpy().astype(float)
            BGNBD.fit(x, summ["recency"].to_numpy(), summ["T"].to_numpy())
            return GammaGamma.fit(x, summ["monetary_value"].to_numpy())

        stage("clv_fit", fit)
        stage("clv_fit_and_score", lambda: fit_clv(summ, unit="W").customers.height)
    else:
        from pyspark.sql import functions as F

        from loyalist.analytics.spark import engine as E

        spark = stage(
            "session",
            lambda: E.get_session(master, shuffle_partitions=16, driver_memory=driver_memory),
        )
        stx = stage("read", lambda: E.read_parquet(spark, path))  # type: ignore[arg-type]
        assert isinstance(stx, E.SparkTransactions)
        summary = E.summarise(stx, unit="W").cache()
        stage("summary", lambda: summary.count())
        stage("rfm", lambda: E.rfm_scores(stx).agg(F.count(F.lit(1))).first())
        stage("cohorts", lambda: E.cohorts_to_polars(E.cohort_table(stx)).height)
        stage("kpis", lambda: E.compute_kpis(stx).overall["revenue"])
        models = stage("clv_fit", lambda: E.fit_models(summary))
        assert isinstance(models, tuple)

        def score() -> object:
            res = E.fit_clv(summary)
            return res.customers.agg(F.sum("clv")).first()

        stage("clv_fit_and_score", score)
    meter.stop()
    return results


def child(
    engine: str,
    path: Path,
    master: str,
    timeout: float,
    driver_memory: str,
    memory_limit: int,
) -> dict[str, Any]:
    """One engine at one size in a fresh process.

    The process (with its JVM) is killed when it runs over ``timeout`` seconds or over
    ``memory_limit`` bytes resident: the machine is shared with PostgreSQL, so the bench
    stops an engine before the kernel's out-of-memory killer picks a victim.
    """
    cmd = [sys.executable, __file__, "--child", engine, "--path", str(path), "--master", master]
    cmd += ["--driver-memory", driver_memory]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(proc.stdout or []), daemon=True),
        threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True),
    ]
    for t in readers:
        t.start()
    why = ""
    peak = 0
    while proc.poll() is None:
        rss = tree_rss(proc.pid)
        peak = max(peak, rss)
        if rss > memory_limit:
            why = f"over {memory_limit / 2**30:.0f} GB resident ({rss / 2**30:.1f} GB)"
        elif time.perf_counter() - started > timeout:
            why = f"over {timeout:.0f} s"
        if why:
            os.killpg(proc.pid, 9)
            proc.wait()
            break
        time.sleep(0.2)
    for t in readers:
        t.join()
    wall = time.perf_counter() - started
    stages = [json.loads(line) for line in err if line.startswith("{")]
    if why:
        return {"ok": False, "why": why, "seconds": wall, "stages": stages}
    if proc.returncode != 0:
        tail = "".join(err).strip().splitlines()[-3:]
        why = "killed (out of memory?)" if proc.returncode < 0 else " | ".join(tail)
        return {"ok": False, "why": why, "seconds": wall, "stages": stages}
    return {"ok": True, "stages": json.loads(out[-1]), "seconds": wall, "peak_mb": peak >> 20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--engines", default="local,spark")
    ap.add_argument("--local-timeout", type=float, default=1800.0)
    ap.add_argument("--spark-timeout", type=float, default=7200.0)
    ap.add_argument("--master", default="local[2]")
    # the JVM's heap: 4 GB keeps the JVM and the Python driver near 6 GB on a shared machine
    ap.add_argument("--driver-memory", default="4g")
    # the local engine (and Spark) is stopped above this resident size, in GB
    ap.add_argument("--memory-limit-gb", type=float, default=16.0)
    ap.add_argument("--child", default=None)
    ap.add_argument("--path", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_stages(args.child, Path(args.path), args.master, args.driver_memory)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = args.engines.split(",")
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load {load()}")
    local_ok = True
    best: dict[str, tuple[int, float]] = {}
    for n in sizes:
        path = DATA / f"n{n}"
        rows, gen_s = generate(n, path)
        print(f"\n{n:,} customers, {rows:,} transactions (generated in {gen_s:.0f} s)")
        for engine in engines:
            if engine == "local" and not local_ok:
                print("  local: not run (stopped at a smaller size)")
                continue
            timeout = args.local_timeout if engine == "local" else args.spark_timeout
            limit = int(args.memory_limit_gb * 2**30)
            res = child(engine, path, args.master, timeout, args.driver_memory, limit)
            if not res["ok"]:
                for s in res["stages"]:
                    print(
                        f"  {engine:<6} {s['stage']:<18} {s['seconds']:>9.2f} s "
                        f"{s['peak_rss_mb']:>7,} MB peak RSS  load {s['load']}"
                    )
                print(f"  {engine}: STOPPED — {res['why']} (load {load()})", flush=True)
                if engine == "local":
                    local_ok = False
                continue
            best[engine] = (n, res["seconds"])
            for s in res["stages"]:
                print(
                    f"  {engine:<6} {s['stage']:<18} {s['seconds']:>9.2f} s "
                    f"{s['peak_rss_mb']:>7,} MB peak RSS  load {s['load']}"
                )
            print(
                f"  {engine:<6} {'total (process)':<18} {res['seconds']:>9.2f} s "
                f"{res['peak_mb']:>7,} MB peak RSS",
                flush=True,
            )
    sn, ss = best.get("spark", (0, 0.0))
    ln, ls = best.get("local", (0, 0.0))
    print(
        f"RESULT spark_max_customers={sn} spark_max_s={ss:.1f} "
        f"local_max_customers={ln} local_max_s={ls:.1f} local_stopped={not local_ok}"
    )


if __name__ == "__main__":
    main()
