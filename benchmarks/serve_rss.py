"""Resident memory of ``loyalist serve --workers N``: idle, at its peak under load, after.

Starts the server (``procs.start_server``, no scheduler) on the data of
``request_instructions.py`` (``--db``, default ``hl_req``), sums the RSS of the supervising
process and all its children once it answers /healthz and has been idle a few seconds, then
drives ``POST /v1/orders`` from ``--clients`` connections for ``--seconds`` (the earning
benchmark's client and basket mix) while sampling the peak, and measures again after.
``--src DIR`` runs another checkout's ``src`` (e.g. a ``git archive`` of a commit).

Usage: .venv/bin/python benchmarks/serve_rss.py [--workers 2] [--clients 8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_earn  # noqa: E402
import procs  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--db", default="hl_req")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    ap.add_argument("--src", type=Path, default=ROOT / "src")
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = str(args.src)
    sys.path.insert(0, str(args.src))
    url = PG + args.db
    members = [int(x) for x in bench_earn.psql("SELECT id FROM member", args.db).split()]
    from loyalist.access import service as access
    from loyalist.kit.db import Database

    db = Database(url)
    with db.transaction() as s:
        key = access.create_key(s, name="serve-rss", scope="hq").secret
    db.dispose()
    port = args.port or procs.free_port()
    proc = procs.start_server(url, port, args.workers)
    try:
        sampler = bench_earn.RssSampler(proc.pid)
        time.sleep(5)
        idle = sampler.total() / 2**20
        by = ", ".join(f"{r} {mb:.0f}" for r, mb in sampler.by_process())
        load = os.getloadavg()[0]
        sampler.start()
        stats = procs.Lat()
        cpu0 = bench_earn.server_cpu_seconds(proc.pid)
        make = bench_earn.order_requests(members, args.clients, 7)
        procs.drive(port, key, [(make, args.clients, stats)], 2.0, args.seconds)
        cpu = bench_earn.server_cpu_seconds(proc.pid) - cpu0
        sampler.stop.set()
        after = sampler.total() / 2**20
        peak_by = ", ".join(f"{r} {mb:.0f}" for r, mb in sampler.by_process())
        print(
            f"src: {args.src}  workers {args.workers}  load average {load:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end"
        )
        print(f"idle RSS: {idle:.0f} MB ({by})")
        print(f"peak RSS under load: {sampler.peak / 2**20:.0f} MB, after: {after:.0f} MB")
        print(f"after, by process: {peak_by}")
        print(f"orders: {stats.ok} answered 2xx, {stats.errors} errors {stats.samples[:2]}")
        if stats.ok:
            print(f"server CPU per order: {1000 * cpu / stats.ok:.1f} ms (warm-up included)")
    finally:
        procs.kill_tree(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
