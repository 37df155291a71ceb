"""Console pages on a large dataset: dashboard and member 360 server time, p50/p95.

What it does:
  1. makes sure the dataset exists (``gen_dataset.py``: 200,000 members, 2,000,000 orders
     on PostgreSQL, cached between runs) and that its dashboard rollup is folded;
  2. starts the real server (``loyalist serve --no-scheduler``, one worker) on it;
  3. signs in through the login form as an HQ admin, a regional manager and a store's staff;
  4. after a warm-up, times sequential requests over keep-alive HTTP on 127.0.0.1:
       - reference: ``GET /healthz`` and a primary-key ``SELECT`` of a member (psycopg),
       - ``GET /admin/dashboard`` for the last 30 days of the dataset, for each of the three,
       - ``GET /admin/members/{id}`` (the member 360 page) for random members;
     every answer must be 200;
  5. prints p50 / p95 / max per page and, as its last line,
     ``RESULT console_dashboard_p95_ms=<worst of the three dashboards> member360_p95_ms=<..>``.

Times are measured by the client around each request on the same machine, so they are the
server's time plus a loopback round trip (the /healthz line shows that floor).
The target is p95 ≤ 300 ms; it is reported, not asserted.

Usage: .venv/bin/python benchmarks/bench_console.py [--requests 50] [--members 200000] ...
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_dataset
from procs import cleanup, free_port, log, on_signal, start_server

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TARGET_MS = 300.0


def sign_in(base: str, login: str, password: str) -> httpx.Client:
    """A keep-alive client holding a console session, signed in through the form."""
    c = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    page = c.get("/admin/login")
    page.raise_for_status()
    token = c.cookies.get("loyalist_login_csrf")
    assert token, "the login page set no CSRF cookie"
    r = c.post("/admin/login", data={"login": login, "password": password, "csrf_token": token})
    if r.status_code != 303:
        raise RuntimeError(f"sign-in of {login} failed: {r.status_code} {r.text[:200]}")
    return c


def timed(n: int, warmup: int, one: Callable[[int], None]) -> list[float]:
    """Milliseconds of ``n`` calls of ``one(i)`` after ``warmup`` untimed ones."""
    for i in range(warmup):
        one(-1 - i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        one(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def get_ok(c: httpx.Client, url: str, marker: str) -> Callable[[int], None]:
    def one(_i: int) -> None:
        r = c.get(url)
        if r.status_code != 200 or marker not in r.text:
            raise RuntimeError(f"GET {url}: {r.status_code} {r.text[:300]}")

    return one


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--members", type=int, default=200_000)
    ap.add_argument("--orders", type=int, default=2_000_000)
    ap.add_argument("--db", default=gen_dataset.DEFAULT_DB)
    ap.add_argument("--requests", type=int, default=50, help="timed requests per page")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ds = gen_dataset.ensure(args.members, args.orders, args.db)
    folded = gen_dataset.fold_rollup(ds.url)
    if folded:
        log(f"rollup: folded ids up to {folded:,} (a new migration restarted it)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start_server(ds.url, port, args.workers)
    log(f"server: {base} ({args.workers} worker), dataset {ds.db}")

    last_day = ds.generated_at.astimezone(ZoneInfo("Asia/Shanghai")).date()
    period = f"from={(last_day - timedelta(days=29)).isoformat()}&to={last_day.isoformat()}"
    admin = sign_in(base, ds.admin, ds.password)
    manager = sign_in(base, ds.region_manager, ds.password)
    store = sign_in(base, ds.store_staff, ds.password)
    anon = httpx.Client(base_url=base, timeout=60)
    rng = random.Random(args.seed)
    members = [rng.randint(1, ds.members) for _ in range(args.requests + args.warmup)]

    load_before = os.getloadavg()
    results: dict[str, list[float]] = {}
    n, w = args.requests, args.warmup
    results["healthz (reference)"] = timed(n, w, get_ok(anon, "/healthz", "ok"))
    with psycopg.connect(
        f"host={gen_dataset.PG_HOST} port={gen_dataset.PG_PORT} user=postgres dbname={ds.db}"
    ) as conn:

        def select_one(i: int) -> None:
            row = conn.execute(
                "SELECT * FROM member WHERE id = %s", (members[i % len(members)],)
            ).fetchone()
            assert row is not None

        results["indexed SELECT (reference)"] = timed(n, w, select_one)

        def scan(_i: int) -> None:
            conn.execute("SELECT count(*), sum(length(name)) FROM member").fetchone()

        results[f"{ds.members:,}-row scan (reference)"] = timed(n, w, scan)
    dash = f"/admin/dashboard?{period}"
    results["dashboard HQ admin"] = timed(n, w, get_ok(admin, dash, "echarts"))
    results[f"dashboard regional manager ({ds.region})"] = timed(
        n, w, get_ok(manager, dash, "echarts")
    )
    results[f"dashboard store staff ({ds.store})"] = timed(n, w, get_ok(store, dash, "echarts"))

    def member360(i: int) -> None:
        get_ok(admin, f"/admin/members/{members[i % len(members)]}", "M0")(i)

    results["member 360 (HQ admin, random members)"] = timed(n, w, member360)

    load_after = os.getloadavg()
    log("")
    log(
        f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before and"
        f" {load_after[0]:.1f} after the timed requests"
    )
    log(f"{'page':<44}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for name, values in results.items():
        log(
            f"{name:<44}{len(values):>5}{statistics.median(values):>10.1f}"
            f"{pct(values, 95):>10.1f}{max(values):>10.1f}"
        )
    dash_p95 = max(pct(v, 95) for k, v in results.items() if k.startswith("dashboard"))
    m360_p95 = pct(results["member 360 (HQ admin, random members)"], 95)
    verdict = "meets" if max(dash_p95, m360_p95) <= TARGET_MS else "misses"
    log(f"\ntarget p95 <= {TARGET_MS:.0f} ms: {verdict} it")
    log(f"RESULT console_dashboard_p95_ms={dash_p95:.1f} member360_p95_ms={m360_p95:.1f}")
    for c in (admin, manager, store, anon):
        c.close()
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
