"""Commit-to-consumer latency of the event stream under the earn benchmark's load.

What it does:
  1. a fresh ``loyalist_bench_stream`` database on PostgreSQL with the earn benchmark's
     organisation, demo programme and members (its ``build_data``);
  2. starts ``loyalist serve`` with its embedded worker (the stream's pollers: sequencer,
     consumers) and ``LOYALIST_WORKER_POLL_INTERVAL_S`` (default 0.1 s here);
  3. drives ``POST /v1/orders`` exactly as bench_earn does (16 clients, warm-up, measured
     window);
  4. waits until the consumers have caught up, then reads, for every event the dashboard
     consumer handled, ``event_receipt.handled_at − outbox_event.occurred_at``: from the
     moment the order's transaction wrote the event (before its commit) to the moment the
     consumer handled it;
  5. prints p50/p99/max and, as its last line,
     ``RESULT consumer_latency_p50_ms=<..> p99_ms=<..>`` (goal: p99 < 1 s).

Usage: .venv/bin/python benchmarks/bench_stream.py [--workers 2] [--duration 20] ...
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

import bench_earn
import procs
from procs import cleanup, free_port, kill_tree, log, on_signal, spawn

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BENCH_DB = "loyalist_bench_stream"
BENCH_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{BENCH_DB}"
CONSUMER = "dashboard.rollup"


def start_server(port: int, workers: int, poll: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LOYALIST_DATABASE_URL": BENCH_URL,
        "LOYALIST_LOG_LEVEL": "warning",
        "LOYALIST_WORKER_POLL_INTERVAL_S": str(poll),
    }
    cmd = [str(VENV_BIN / "loyalist"), "serve", "--worker", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    proc = spawn(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not answer /healthz within 180 s")


def caught_up() -> bool:
    behind = bench_earn.psql(
        "SELECT (SELECT COUNT(*) FROM outbox_event WHERE position IS NULL)"
        " + (SELECT COUNT(*) FROM outbox_event e WHERE e.type IN ('order.recorded','points.earned')"
        f"   AND e.position > COALESCE((SELECT position FROM event_consumer"
        f"   WHERE name = '{CONSUMER}'), 0))",
        BENCH_DB,
    )
    return int(behind or 0) == 0


def latencies_ms(since: datetime) -> list[float]:
    out = bench_earn.psql(
        "SELECT EXTRACT(EPOCH FROM (r.handled_at - e.occurred_at)) * 1000"
        " FROM event_receipt r JOIN outbox_event e ON e.event_id = r.event_id"
        f" WHERE r.consumer = '{CONSUMER}' AND e.occurred_at >= '{since.isoformat()}'",
        BENCH_DB,
    )
    return sorted(float(x) for x in out.split())


def pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms)) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "2")))
    ap.add_argument("--poll", type=float, default=0.1, help="worker poll interval, seconds")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(cleanup)
    sys.path.insert(0, str(ROOT / "src"))
    # bench_earn's data builders, pointed at this benchmark's own database
    bench_earn.BENCH_DB, bench_earn.BENCH_URL = BENCH_DB, BENCH_URL

    log(
        f"bench_stream on {os.cpu_count()} CPU(s), "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}"
    )
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh"), BENCH_URL], check=True)
    bench_earn.recreate_database(BENCH_DB)
    key = bench_earn.build_data(args.members, args.seed, BENCH_URL)
    members = bench_earn.member_ids()

    port = free_port()
    server = start_server(port, args.workers, args.poll)
    log(
        f"server: loyalist serve --workers {args.workers} with its embedded worker "
        f"(poll {args.poll:g}s; woken at once by events positioned in its own process)"
    )
    start = datetime.now(UTC)
    stats, seconds = asyncio.run(
        bench_earn.drive(port, key, members, args.clients, args.warmup, args.duration, args.seed)
    )
    deadline = time.monotonic() + 120
    while not caught_up() and time.monotonic() < deadline:
        time.sleep(0.2)
    done = caught_up()
    kill_tree(server)
    procs.children.remove(server)

    lat = latencies_ms(start)
    orders = stats.ok_total
    p50, p99 = pct(lat, 50), pct(lat, 99)
    log(
        f"  orders: {orders} ({len(stats.latencies_ns) / seconds:.1f}/s measured), "
        f"errors {stats.errors}"
    )
    log(f"  events handled by {CONSUMER}: {len(lat)}")
    log(f"consumer latency p50 {p50:10.1f} ms")
    log(f"consumer latency p99 {p99:10.1f} ms   (goal < 1000)")
    log(f"consumer latency max {lat[-1] if lat else float('nan'):10.1f} ms")
    failed = stats.errors > 0 or not lat or not done
    if failed:
        log(
            "FAILED: "
            + ("errors in the load; " if stats.errors else "")
            + ("" if done else "consumers did not catch up")
        )
    log(f"RESULT consumer_latency_p50_ms={p50:.1f} p99_ms={p99:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
