"""Earning throughput: POST /v1/orders on PostgreSQL against pgbench's TPC-B, in one run.

What it does (see docs/benchmarks.md):
  1. makes sure PostgreSQL is up, recreates the ``loyalist_bench`` database and migrates it;
  2. builds an organisation (HQ, 3 regions, 12 stores), applies the demo programme, creates
     N members and a read-write HQ API key — all through the services;
  3. starts the real server (``loyalist serve --no-scheduler``) as a subprocess;
  4. drives ``POST /v1/orders`` (2–4 line baskets, random members and stores, each request
     with its own Idempotency-Key) from 16 concurrent keep-alive connections for a fixed
     time after a warm-up, recording every latency; any non-2xx answer is an error;
  5. samples the server's peak RSS (summed over its process tree);
  6. runs pgbench's built-in TPC-B (``-i -s 10`` into ``loyalist_pgbench``, then
     ``-c 16 -j 2 -T 20``) on the same PostgreSQL;
  7. runs ``loyalist ledger verify`` on the bench database, which must be clean;
  8. prints the figures and, as its last line,
     ``RESULT earn_ratio=<orders/s ÷ pgbench tps> p99_ms=<..> rss_mb=<..>``.

The load generator is a small asyncio HTTP/1.1 client (one process, one connection per
client) so that it spends as little of the machine's CPU as possible; its own CPU use is
reported. Every process it starts is stopped on exit, Ctrl-C and errors included.

Usage: .venv/bin/python benchmarks/bench_earn.py [--workers 2] [--duration 20] ...
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil

import procs
from procs import cleanup, free_port, kill_tree, log, spawn

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PG_HOST = "127.0.0.1"
PG_PORT = 5432
# Overridable so two people on one machine do not recreate each other's databases.
BENCH_DB = os.environ.get("BENCH_DB", "loyalist_bench")
PGBENCH_DB = os.environ.get("BENCH_PGBENCH_DB", "loyalist_pgbench")
BENCH_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{BENCH_DB}"
PROGRAMME = ROOT / "src" / "loyalist" / "demo" / "programme.yaml"

REGIONS = {
    "east": ("华东区", ["sh1", "sh2", "hz1", "nj1"]),
    "south": ("华南区", ["sz1", "sz2", "gz1", "xm1"]),
    "north": ("华北区", ["bj1", "bj2", "tj1", "qd1"]),
}
# sku, category, unit price (fen), weight in baskets
CATALOGUE = [
    ("LATTE-M", "coffee", 3200, 10),
    ("AMERICANO-M", "coffee", 2800, 8),
    ("CAPPUCCINO-M", "coffee", 3200, 6),
    ("FLATWHITE", "coffee", 3400, 4),
    ("COLDBREW", "coffee", 3600, 4),
    ("CROISSANT", "bakery", 1800, 6),
    ("CAKE-SLICE", "bakery", 3500, 4),
    ("SANDWICH", "food", 3800, 4),
    ("BEANS-250G", "coffee_beans", 9800, 2),
    ("DRIP-BAGS-10", "coffee_beans", 6800, 2),
    ("TUMBLER", "merchandise", 16800, 1),
    ("GIFT-CARD-100", "gift_card", 10000, 1),
]
CHANNELS = [("pos", 80), ("app", 12), ("miniprogram", 8)]


def psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-d", db, "-tAc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def recreate_database(name: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{name}"')


# --------------------------------------------------------------------------- data


def build_data(members: int, seed: int, url: str = BENCH_URL) -> str:
    """Org, programme, members and an API key, through the services. Returns the key."""
    from loyalist.access import service as access
    from loyalist.kit.actor import SYSTEM
    from loyalist.kit.clock import clock
    from loyalist.kit.db import Database
    from loyalist.kit.migrate import upgrade
    from loyalist.member import service as member_service
    from loyalist.member.schemas import MemberCreate
    from loyalist.org import service as org
    from loyalist.programme import service as programmes

    clock.reset()
    upgrade(url)
    db = Database(url)
    rng = random.Random(seed)
    try:
        with db.transaction() as s:
            org.create_unit(s, code="hq", name="总部", kind="hq")
            for region, (rname, stores) in REGIONS.items():
                org.create_unit(s, code=region, name=rname, kind="region", parent_code="hq")
                for code in stores:
                    org.create_unit(
                        s, code=code, name=f"门店 {code}", kind="store", parent_code=region
                    )
            programmes.apply(s, programmes.load_file(PROGRAMME), actor="bench")
            key = access.create_key(s, name="bench", scope="hq").secret
        stores = [c for _, (_, cs) in REGIONS.items() for c in cs]
        batch = 500
        for start in range(0, members, batch):
            with db.transaction() as s:
                for i in range(start, min(members, start + batch)):
                    member_service.create(
                        s,
                        SYSTEM,
                        MemberCreate(
                            external_id=f"bench-m{i:06d}",
                            phone=f"+86139{i:08d}",
                            name=f"会员{i}",
                            home_store=rng.choice(stores),
                            join_channel="pos",
                        ),
                    )
    finally:
        db.dispose()
    return key


def new_key() -> str:
    from loyalist.access import service as access
    from loyalist.kit.db import Database

    db = Database(BENCH_URL)
    try:
        with db.transaction() as s:
            return access.create_key(s, name="bench", scope="hq").secret
    finally:
        db.dispose()


def member_ids() -> list[int]:
    return [int(x) for x in psql("SELECT id FROM member ORDER BY id", BENCH_DB).split()]


def bench_members(build: bool, members: int, seed: int) -> list[int]:
    """The bench database's member ids, after building it first when ``build`` (the
    ``--build`` of the benchmarks that otherwise reuse ``make bench-earn``'s data); none
    logged with what to do."""
    if build:
        recreate_database(BENCH_DB)
        build_data(members, seed)
    ids = member_ids()
    if not ids:
        log(f"no members in {BENCH_DB}: run make bench-earn first, or --build")
    return ids


# --------------------------------------------------------------------------- load


class Basket:
    def __init__(self, rng: random.Random, members: list[int]) -> None:
        self.rng = rng
        self.members = members
        self.stores = [c for _, (_, cs) in REGIONS.items() for c in cs]
        self.items = [c[:3] for c in CATALOGUE]
        self.weights = [c[3] for c in CATALOGUE]
        self.channels = [c for c, _ in CHANNELS]
        self.cweights = [w for _, w in CHANNELS]

    def order(self, external_id: str) -> bytes:
        rng = self.rng
        n = rng.randint(2, 4)
        picked = rng.choices(self.items, self.weights, k=n)
        lines = []
        gross = 0
        for sku, cat, price in picked:
            qty = 1 if rng.random() < 0.8 else rng.randint(2, 3)
            disc = (qty * price) // 10 if rng.random() < 0.15 else 0
            gross += qty * price - disc
            lines.append(
                {
                    "sku": sku,
                    "category": cat,
                    "quantity": qty,
                    "unit_price_minor": price,
                    "discount_minor": disc,
                }
            )
        occurred = datetime.now(UTC) - timedelta(seconds=rng.randint(1, 600))
        return orjson.dumps(
            {
                "external_id": external_id,
                "member_id": rng.choice(self.members),
                "store": rng.choice(self.stores),
                "channel": rng.choices(self.channels, self.cweights)[0],
                "occurred_at": occurred.isoformat(timespec="seconds"),
                "currency": "CNY",
                "amount_paid_minor": gross,
                "lines": lines,
            }
        )


def write_in_process(db: Any, path: str, body: bytes, view: Any) -> None:
    """A write through the service path its endpoint runs, without HTTP: ``run_idempotent``
    (a fresh key) → ``view(session)`` → the answer's JSON form (the instruction counts'
    service yardstick)."""
    from loyalist.idempotency.service import Answer, run_idempotent

    def unit(s: Any) -> Answer:
        return Answer(201, view(s).model_dump(mode="json", by_alias=True))

    run_idempotent(
        db,
        principal="bench",
        key=uuid.uuid4().hex,
        method="POST",
        path=path,
        body=body,
        work=unit,
    )


def record_in_process(db: Any, body: bytes) -> None:
    """Record the order ``body`` as ``POST /v1/orders`` does, without HTTP
    (:func:`write_in_process` of ``order.record_view``)."""
    from loyalist.kit.actor import SYSTEM
    from loyalist.order import service
    from loyalist.order.schemas import OrderCreate

    data = OrderCreate.model_validate_json(body)
    write_in_process(db, "/v1/orders", body, lambda s: service.record_view(s, SYSTEM, data)[1])


def order_requests(members: list[int], clients: int, seed: int) -> procs.Make:
    """POST /v1/orders: a basket of its own (seeded) per client, a unique external id."""
    baskets = [Basket(random.Random(seed * 1000 + i), members) for i in range(clients)]
    run_id = uuid.uuid4().hex[:8]

    def make(idx: int, seq: int) -> tuple[str, str, bytes]:
        return "POST", "/v1/orders", baskets[idx].order(f"bench-{run_id}-{idx}-{seq}")

    return make


class RssSampler(threading.Thread):
    """Peak resident memory of a process and all its descendants, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()

    def total(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        rss = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                rss += p.memory_info().rss
        return rss

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.peak = max(self.peak, self.total())

    def by_process(self) -> list[tuple[str, float]]:
        """(role, RSS in MB) now: the supervising process, then its children (workers and
        multiprocessing's helper)."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        out = []
        for i, p in enumerate(procs):
            with contextlib.suppress(psutil.Error):
                out.append(("main" if i == 0 else "child", p.memory_info().rss / 1024 / 1024))
        return out


def server_cpu_seconds(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def cpu_seconds_of(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds so far of each of ``pids`` that still runs."""
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
    return out


def backend_pids(db: str) -> list[int]:
    """The client backends connected to ``db`` now (``pg_stat_activity``; not this query's
    own, which runs in the ``postgres`` database)."""
    out = psql(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
        f" AND datname = '{db.replace(chr(39), chr(39) * 2)}'"
    )
    return [int(x) for x in out.split()]


@dataclass(frozen=True)
class PgCpu:
    """One reading of a database's client backends' CPU seconds so far, by pid. ``later -
    earlier`` is the CPU spent in between by the backends connected at the later reading: a
    backend that connected in between counts from its start, one that disconnected in
    between is not counted (the server's pooled connections stay for the run), and no
    other database's backend, nor PostgreSQL's shared processes (WAL writer, checkpointer,
    autovacuum), counts at all."""

    by_pid: dict[int, float]

    def __sub__(self, earlier: PgCpu) -> float:
        return sum(t - earlier.by_pid.get(pid, 0.0) for pid, t in self.by_pid.items())


def postgres_cpu_seconds(db: str = BENCH_DB) -> PgCpu:
    """The CPU so far of ``db``'s client backends (default: the bench database); subtract
    two readings for the CPU in between. Not every ``postgres`` process of the machine:
    that counted other databases' work (other benchmarks and tests on the machine) and went
    negative when one of their backends ended during the run."""
    return PgCpu(cpu_seconds_of(backend_pids(db)))


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    return procs.start_server(BENCH_URL, port, workers)


# --------------------------------------------------------------------------- pgbench


def run_pgbench(scale: int, clients: int, threads: int, seconds: int) -> float:
    if shutil.which("pgbench") is None:
        raise RuntimeError("pgbench is not installed (apt-get install postgresql-contrib)")
    recreate_database(PGBENCH_DB)
    common = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres"]
    subprocess.run(
        ["pgbench", *common, "-i", "-s", str(scale), "-q", PGBENCH_DB],
        check=True,
        capture_output=True,
    )
    return run_pgbench_script(PGBENCH_DB, [], clients, threads, seconds, show=True)


# --------------------------------------------------------------------------- main


def pct(sorted_ns: list[int], p: float) -> float:
    if not sorted_ns:
        return float("nan")
    i = min(len(sorted_ns) - 1, max(0, round(p / 100 * len(sorted_ns)) - 1))
    return sorted_ns[i] / 1e6


FLOOR_SCRIPT = ROOT / "benchmarks" / "earn_floor.sql"
FLOOR_DB = os.environ.get("BENCH_FLOOR_DB", "loyalist_floor")


def run_floor(members: int, clients: int, threads: int, seconds: int) -> float:
    """The database floor: benchmarks/earn_floor.sql (the writes of one recorded order) on a
    copy of the bench database (its schema, indexes and data), ``clients`` connections."""
    accounts_off = psql("SELECT count(*) FROM points_account WHERE id <> owner_member_id", BENCH_DB)
    if accounts_off != "0":
        raise RuntimeError("the floor script assumes account id = member id in the bench data")
    psql(f'DROP DATABASE IF EXISTS "{FLOOR_DB}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{FLOOR_DB}" TEMPLATE "{BENCH_DB}"')
    return run_pgbench_script(
        FLOOR_DB,
        ["-n", "-f", str(FLOOR_SCRIPT), "-D", f"members={members}"],
        clients,
        threads,
        seconds,
    )


def run_pgbench_script(
    db: str, extra: list[str], clients: int, threads: int, seconds: int, *, show: bool = False
) -> float:
    """pgbench on ``db`` (``extra``: its script and variables; none: TPC-B) with ``clients``
    connections for ``seconds``: its tps (``show``: its summary lines logged too)."""
    common = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres"]
    load = ["-c", str(clients), "-j", str(threads), "-T", str(seconds)]
    proc = spawn(
        ["pgbench", *common, *extra, *load, db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, errout = proc.communicate(timeout=seconds + 120)
    procs.children.remove(proc)
    text = out.decode()
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed: {errout.decode()[-800:]}")
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text) or re.search(
        r"tps = ([\d.]+)", text
    )
    if m is None:
        raise RuntimeError(f"cannot find tps in pgbench output:\n{text}")
    if show:
        for line in text.splitlines():
            if line.startswith(("latency average", "tps", "number of transactions actually")):
                log(f"  pgbench: {line}")
    return float(m.group(1))


@dataclass
class Run:
    orders_s: float
    p50: float
    p99: float
    mean: float
    rss_mb: float
    floor_tps: float
    tpcb_tps: float
    server_cpu_ms: float  # server CPU per order
    pg_cpu_ms: float  # PostgreSQL CPU per order
    load: float  # 1-minute load average at the start of the run
    errors: int

    @property
    def floor_ratio(self) -> float:
        return self.orders_s / self.floor_tps if self.floor_tps > 0 else float("nan")

    @property
    def tpcb_ratio(self) -> float:
        return self.orders_s / self.tpcb_tps if self.tpcb_tps > 0 else float("nan")


def git_commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def one_run(args: argparse.Namespace, key: str, members: list[int], n: int) -> Run:
    load = os.getloadavg()[0]
    port = free_port()
    server = start_server(port, args.workers)
    log(
        f"run {n}: load average {load:.1f}; server: loyalist serve --no-scheduler "
        f"--workers {args.workers} (pid {server.pid})"
    )
    sampler = RssSampler(server.pid)
    sampler.peak = sampler.total()
    sampler.start()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    srv0 = server_cpu_seconds(server.pid)
    pg0 = postgres_cpu_seconds()
    split: list[int] = []

    def note_split() -> None:  # how the clients' keep-alive connections fell on the workers
        time.sleep(args.warmup + 1)
        split.extend(n for n in procs.connections_by_worker(server, port) if n)

    splitter = threading.Thread(target=note_split, daemon=True)
    splitter.start()
    w0 = time.monotonic()
    stats = procs.Lat()
    make = order_requests(members, args.clients, args.seed + n)
    procs.drive(port, key, [(make, args.clients, stats)], args.warmup, args.duration)
    seconds = args.duration
    wall = time.monotonic() - w0
    splitter.join()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    srv1 = server_cpu_seconds(server.pid)
    pg1 = postgres_cpu_seconds()
    sampler.stop.set()
    sampler.join()
    per_process = sampler.by_process()
    kill_tree(server)
    procs.children.remove(server)

    lat = sorted(stats.ns)
    orders_s = len(lat) / seconds
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    log(
        f"  orders: {len(lat)} in {seconds:g}s measured ({stats.ok} incl. warm-up), "
        f"errors: {stats.errors}; client connections per worker: "
        f"{' + '.join(map(str, sorted(split, reverse=True))) or '?'}"
    )
    for sample in stats.samples:
        log(f"  error: {sample}")
    total = max(stats.ok, 1)
    log(
        f"  CPU during the load ({wall:.1f}s wall, 2 cores = {2 * wall:.0f} core-s): "
        f"server {srv1 - srv0:.1f}s ({1000 * (srv1 - srv0) / total:.1f} ms/order), "
        f"PostgreSQL (the bench database's backends) {pg1 - pg0:.1f}s "
        f"({1000 * (pg1 - pg0) / total:.1f} ms/order), "
        f"load generator {client_cpu:.1f}s ({100 * client_cpu / wall:.0f}% of one core)"
    )
    log("  peak RSS by process: " + ", ".join(f"{r} {mb:.0f} MB" for r, mb in per_process))
    floor = tpcb = float("nan")
    if not args.skip_pgbench:
        floor = run_floor(len(members), args.clients, 2, args.pgbench_seconds)
        log(f"  floor (earn_floor.sql, {args.clients} clients): {floor:.1f} tps")
        tpcb = run_pgbench(args.pgbench_scale, args.clients, 2, args.pgbench_seconds)
    run = Run(
        orders_s=orders_s,
        p50=pct(lat, 50),
        p99=pct(lat, 99),
        mean=statistics.fmean(lat) / 1e6 if lat else float("nan"),
        rss_mb=sampler.peak / 1024 / 1024,
        floor_tps=floor,
        tpcb_tps=tpcb,
        server_cpu_ms=1000 * (srv1 - srv0) / total,
        pg_cpu_ms=1000 * (pg1 - pg0) / total,
        load=load,
        errors=stats.errors + (0 if lat else 1),
    )
    log(
        f"  run {n}: {orders_s:.1f} orders/s, p50 {run.p50:.1f} ms, p99 {run.p99:.1f} ms, "
        f"RSS {run.rss_mb:.0f} MB, floor {floor:.1f} tps, TPC-B {tpcb:.1f} tps, "
        f"earn_floor_ratio {run.floor_ratio:.3f}, earn_ratio {run.tpcb_ratio:.3f}"
    )
    return run


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """min / median / max"""
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "2")))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--pgbench-seconds", type=int, default=20)
    ap.add_argument("--pgbench-scale", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-pgbench", action="store_true", help="for profiling only")
    ap.add_argument(
        "--reuse-data", action="store_true", help="keep the bench database (profiling only)"
    )
    args = ap.parse_args()

    procs.clean_up_on_exit()
    sys.path.insert(0, str(ROOT / "src"))

    commit = git_commit()
    log(procs.heading("bench_earn", commit))
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh"), BENCH_URL], check=True)
    if not args.skip_pgbench and shutil.which("pgbench") is None:
        raise RuntimeError("pgbench is not installed (apt-get install postgresql-contrib)")
    log(
        f"setup: fresh {BENCH_DB}, org of 3 regions / 12 stores, demo programme, "
        f"{args.members} members"
    )
    t = time.monotonic()
    if args.reuse_data:
        key = new_key()
    else:
        recreate_database(BENCH_DB)
        key = build_data(args.members, args.seed)
    members = member_ids()
    log(f"  done in {time.monotonic() - t:.1f}s")
    log(
        f"load: {args.clients} clients, POST /v1/orders, {args.warmup:g}s warm-up + "
        f"{args.duration:g}s measured; then the floor (benchmarks/earn_floor.sql) and TPC-B "
        f"(-s {args.pgbench_scale}), {args.clients} clients, {args.pgbench_seconds}s each; "
        f"{args.runs} run(s)"
    )
    runs = [one_run(args, key, members, n) for n in range(1, args.runs + 1)]

    log("ledger verify:")
    verify = subprocess.run(
        [str(VENV_BIN / "loyalist"), "ledger", "verify"],
        env={**os.environ, "LOYALIST_DATABASE_URL": BENCH_URL},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    log("  " + (verify.stdout + verify.stderr).strip().replace("\n", "\n  "))

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    log("")
    log(f"{len(runs)} run(s), min / median / max; commit {commit}")
    log(
        f"orders/s          {spread([r.orders_s for r in runs])}   ({args.clients} clients, "
        f"{args.workers} worker(s))"
    )
    log(f"latency p50       {spread([r.p50 for r in runs])} ms")
    log(f"latency p99       {spread([r.p99 for r in runs])} ms   (target ≤ 50)")
    log(f"latency mean      {spread([r.mean for r in runs])} ms")
    log(f"server peak RSS   {spread([r.rss_mb for r in runs], '{:.0f}')} MB   (target ≤ 300)")
    log(f"server CPU/order  {spread([r.server_cpu_ms for r in runs], '{:.2f}')} ms")
    log(f"PG CPU/order      {spread([r.pg_cpu_ms for r in runs], '{:.2f}')} ms")
    log(f"floor tps         {spread([r.floor_tps for r in runs])}")
    log(f"pgbench TPC-B tps {spread([r.tpcb_tps for r in runs])}")
    log(f"earn_floor_ratio  {spread([r.floor_ratio for r in runs], '{:.3f}')}   (target ≥ 0.5)")
    log(f"earn_ratio        {spread([r.tpcb_ratio for r in runs], '{:.3f}')}   (TPC-B)")
    log(f"load average      {spread([r.load for r in runs])} (1 min, at each run's start)")
    errors = sum(r.errors for r in runs)
    failed = errors > 0 or verify.returncode != 0
    if failed:
        log(
            "FAILED: "
            + ("errors in the load; " if errors else "")
            + ("ledger verify is not clean" if verify.returncode else "")
        )
    log(
        f"RESULT earn_floor_ratio={med([r.floor_ratio for r in runs]):.3f} "
        f"earn_ratio={med([r.tpcb_ratio for r in runs]):.3f} "
        f"p99_ms={med([r.p99 for r in runs]):.1f} rss_mb={med([r.rss_mb for r in runs]):.0f}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
    finally:
        cleanup()
