"""Redemptions, member reads, SQLite reads beside writers, and 1/2/4 server processes (issue 11).

Shares bench_earn's machinery (data, server, pgbench, RSS and CPU sampling, percentiles):

``--mode redeem``   POST /v1/redemptions (the ``upsize`` reward, points only) from 16 clients
                    against its own floor, benchmarks/redeem_floor.sql (the writes one
                    redemption issues), measured on a copy of the bench database in the same
                    run: ``RESULT redeem_floor_ratio=<redemptions/s ÷ floor tps> p99_ms=..``.
``--mode read``     GET /v1/members/{id} against benchmarks/read_floor.sql (the SELECTs one
                    member read issues): ``RESULT read_floor_ratio=.. read_p99_ms=..``.
``--mode sqlite``   the embedded SQLite default: member reads alone, then the same reads while
                    writers post orders, read p50/p99 of each phase:
                    ``RESULT sqlite_read_p99_ms_alone=.. sqlite_read_p99_ms_with_writes=..``.
``--mode scale``    POST /v1/orders with ``serve --workers N`` for each N of ``--workers-list``
                    (default 1,2,4), each beside the earn floor (benchmarks/earn_floor.sql) in
                    the same run: ``RESULT scale_out orders_s_1=.. floor_ratio_1=.. ...``.

Every figure is printed with the 1-minute load average at its start and the git commit; the
machine is shared, so runs are short (``--duration``, 10 s by default). Databases are named by
``BENCH_DB`` / ``BENCH_FLOOR_DB`` / ``BENCH_PGBENCH_DB`` as in bench_earn.

Usage: .venv/bin/python benchmarks/bench_redeem_read.py [--mode redeem,read,sqlite,scale]
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bench_earn as be
import procs
from procs import Lat, Make, cleanup, free_port, kill_tree, log

ROOT = be.ROOT
REDEEM_FLOOR = ROOT / "benchmarks" / "redeem_floor.sql"
READ_FLOOR = ROOT / "benchmarks" / "read_floor.sql"
REWARD = "upsize"  # points only, no stock, no per-member limit: 500 points
GRANT = 1_000_000  # points each bench member is given, available, before the load

# --------------------------------------------------------------------------- data


def grant_points(url: str, members: list[int]) -> None:
    """Give every member GRANT available points (one staff adjustment each, one lot), and
    redeem the reward once, so every later redemption updates its usage row (steady state)."""
    sys.path.insert(0, str(ROOT / "src"))
    from loyalist.kit.actor import SYSTEM
    from loyalist.kit.db import Database
    from loyalist.member import service as member_service
    from loyalist.reward import service as rewards
    from loyalist.reward.schemas import RedemptionCreate

    db = Database(url)
    try:
        for start in range(0, len(members), 250):
            with db.transaction() as s:
                for mid in members[start : start + 250]:
                    member_service.adjust_points(s, SYSTEM, mid, GRANT, "bench grant")
            with db.transaction() as s:
                for mid in members[start : start + 250]:
                    rewards.redeem_view(s, SYSTEM, RedemptionCreate(member_id=mid, reward=REWARD))
    finally:
        db.dispose()


def check_ids_line_up() -> None:
    """The floor scripts address a member's account and lot by the member's id."""
    off = be.psql(
        "SELECT (SELECT count(*) FROM points_account WHERE id <> owner_member_id)"
        " + (SELECT count(*) FROM points_lot WHERE id <> account_id)",
        be.BENCH_DB,
    )
    if off != "0":
        raise RuntimeError("the floor scripts assume account id = lot id = member id")


def copy_bench_db() -> None:
    be.psql(f'DROP DATABASE IF EXISTS "{be.FLOOR_DB}" WITH (FORCE)')
    be.psql(f'CREATE DATABASE "{be.FLOOR_DB}" TEMPLATE "{be.BENCH_DB}"')


def floor_tps(script: Path, members: int, clients: int, seconds: int, **defs: int) -> float:
    copy_bench_db()
    extra = ["-n", "-f", str(script), "-D", f"members={members}"]
    for k, v in defs.items():
        extra += ["-D", f"{k}={v}"]
    return be.run_pgbench_script(be.FLOOR_DB, extra, clients, 2, seconds)


# --------------------------------------------------------------------------- load


def redeem_requests(members: list[int], seed: int) -> Make:
    rng = random.Random(seed)

    def make(_idx: int, _seq: int) -> tuple[str, str, bytes]:
        body = f'{{"member_id": {rng.choice(members)}, "reward": "{REWARD}"}}'.encode()
        return "POST", "/v1/redemptions", body

    return make


def read_requests(members: list[int], seed: int) -> Make:
    rng = random.Random(seed)

    def make(_idx: int, _seq: int) -> tuple[str, str, None]:
        return "GET", f"/v1/members/{rng.choice(members)}", None

    return make


def order_requests(members: list[int], seed: int) -> Make:
    basket = be.Basket(random.Random(seed), members)
    run_id = uuid.uuid4().hex[:8]

    def make(idx: int, seq: int) -> tuple[str, str, bytes]:
        return "POST", "/v1/orders", basket.order(f"rr-{run_id}-{idx}-{seq}")

    return make


def summary(name: str, stats: Lat, seconds: float) -> str:
    lat = sorted(stats.ns)
    return (
        f"{name}: {len(lat) / seconds:.1f}/s, p50 {be.pct(lat, 50):.1f} ms, "
        f"p99 {be.pct(lat, 99):.1f} ms, errors {stats.errors}"
    )


def check_errors(stats: Lat, what: str) -> None:
    for s in stats.samples:
        log(f"  {what} error: {s}")


# --------------------------------------------------------------------------- modes


@dataclass
class Pair:
    """One measured load beside its floor, in the same run."""

    rate: float
    p50: float
    p99: float
    floor: float
    load: float
    errors: int
    server_cpu_ms: float

    @property
    def ratio(self) -> float:
        return self.rate / self.floor if self.floor > 0 else float("nan")


def measure_pg(
    args: argparse.Namespace,
    key: str,
    make: Make,
    workers: int,
    floor: Callable[[], float],
    what: str,
) -> Pair:
    load = os.getloadavg()[0]
    port = free_port()
    server = procs.start_server(be.BENCH_URL, port, workers)
    cpu0 = be.server_cpu_seconds(server.pid)
    stats = Lat()
    try:
        procs.drive(port, key, [(make, args.clients, stats)], args.warmup, args.duration)
        cpu1 = be.server_cpu_seconds(server.pid)
    finally:
        kill_tree(server)
        procs.children.remove(server)
    check_errors(stats, what)
    lat = sorted(stats.ns)
    rate = len(lat) / args.duration
    tps = floor() if not args.skip_pgbench else float("nan")
    pair = Pair(
        rate=rate,
        p50=be.pct(lat, 50),
        p99=be.pct(lat, 99),
        floor=tps,
        load=load,
        errors=stats.errors + (0 if lat else 1),
        server_cpu_ms=1000 * (cpu1 - cpu0) / max(stats.ok, 1),
    )
    log(
        f"  {what}, {workers} worker(s), load {load:.1f}: {rate:.1f}/s, p50 {pair.p50:.1f} ms, "
        f"p99 {pair.p99:.1f} ms, server CPU {pair.server_cpu_ms:.2f} ms/request, "
        f"errors {stats.errors}; floor {tps:.1f} tps; ratio {pair.ratio:.3f}"
    )
    return pair


def report(name: str, pairs: list[Pair], unit: str) -> None:
    log(f"{name}, {len(pairs)} run(s), min / median / max:")
    log(f"  {unit}/s          {be.spread([p.rate for p in pairs])}")
    log(f"  p50 ms            {be.spread([p.p50 for p in pairs])}")
    log(f"  p99 ms            {be.spread([p.p99 for p in pairs])}")
    log(f"  floor tps         {be.spread([p.floor for p in pairs])}")
    log(f"  ratio             {be.spread([p.ratio for p in pairs], '{:.3f}')}")
    log(f"  server CPU ms/req {be.spread([p.server_cpu_ms for p in pairs], '{:.2f}')}")
    log(f"  load average      {be.spread([p.load for p in pairs])}")


def mode_redeem(args: argparse.Namespace, key: str, members: list[int]) -> int:
    reward_id = int(be.psql(f"SELECT id FROM reward WHERE code = '{REWARD}'", be.BENCH_DB))
    log(f"redeem: {args.clients} clients, POST /v1/redemptions ({REWARD}) beside redeem_floor.sql")
    pairs = [
        measure_pg(
            args,
            key,
            redeem_requests(members, args.seed + n),
            args.workers,
            lambda: floor_tps(
                REDEEM_FLOOR, len(members), args.clients, args.pgbench_seconds, reward=reward_id
            ),
            f"run {n} redemptions",
        )
        for n in range(1, args.runs + 1)
    ]
    report("redemptions", pairs, "redemptions")
    med = statistics.median
    log(
        f"RESULT redeem_floor_ratio={med([p.ratio for p in pairs]):.3f} "
        f"p99_ms={med([p.p99 for p in pairs]):.1f} "
        f"load={med([p.load for p in pairs]):.1f} commit={be.git_commit()}"
    )
    return sum(p.errors for p in pairs)


def mode_read(args: argparse.Namespace, key: str, members: list[int]) -> int:
    log(f"read: {args.clients} clients, GET /v1/members/{{id}} beside read_floor.sql")
    pairs = [
        measure_pg(
            args,
            key,
            read_requests(members, args.seed + n),
            args.workers,
            lambda: floor_tps(READ_FLOOR, len(members), args.clients, args.pgbench_seconds),
            f"run {n} member reads",
        )
        for n in range(1, args.runs + 1)
    ]
    report("member reads", pairs, "reads")
    med = statistics.median
    log(
        f"RESULT read_floor_ratio={med([p.ratio for p in pairs]):.3f} "
        f"read_p99_ms={med([p.p99 for p in pairs]):.1f} "
        f"load={med([p.load for p in pairs]):.1f} commit={be.git_commit()}"
    )
    return sum(p.errors for p in pairs)


def mode_scale(args: argparse.Namespace, key: str, members: list[int]) -> int:
    counts = [int(x) for x in args.workers_list.split(",") if x.strip()]
    log(f"scale: POST /v1/orders, {args.clients} clients, serve --workers {counts}, earn floor")
    table: dict[int, list[Pair]] = {n: [] for n in counts}
    for r in range(1, args.runs + 1):
        for n in counts:
            table[n].append(
                measure_pg(
                    args,
                    key,
                    order_requests(members, args.seed + 100 * r + n),
                    n,
                    lambda: be.run_floor(len(members), args.clients, 2, args.pgbench_seconds),
                    f"run {r} orders",
                )
            )
    med = statistics.median
    log(f"scale out, {args.runs} run(s), medians (min / median / max of orders/s):")
    log("  processes | orders/s | p99 ms | floor tps | orders/s ÷ floor | load")
    for n in counts:
        ps = table[n]
        log(
            f"  {n:9d} | {be.spread([p.rate for p in ps])} | {med([p.p99 for p in ps]):.1f} | "
            f"{med([p.floor for p in ps]):.1f} | {med([p.ratio for p in ps]):.3f} | "
            f"{med([p.load for p in ps]):.1f}"
        )
    log(
        "RESULT scale_out "
        + " ".join(
            f"orders_s_{n}={med([p.rate for p in table[n]]):.1f} "
            f"floor_ratio_{n}={med([p.ratio for p in table[n]]):.3f}"
            for n in counts
        )
        + f" load={med([p.load for ps in table.values() for p in ps]):.1f}"
        + f" commit={be.git_commit()}"
    )
    return sum(p.errors for ps in table.values() for p in ps)


def mode_sqlite(args: argparse.Namespace) -> int:
    """Member reads on the embedded SQLite default, alone and beside writers."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_sqlite_"))
    atexit.register(shutil.rmtree, tmp, True)
    url = f"sqlite:///{tmp / 'bench.db'}"
    log(f"sqlite: {url}, {args.members} members")
    key = be.build_data(args.members, args.seed, url=url)
    sys.path.insert(0, str(ROOT / "src"))
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as c:
        members = [int(x) for x in c.execute(text("SELECT id FROM member ORDER BY id")).scalars()]
    engine.dispose()
    readers, writers = args.readers, args.writers
    errors = 0
    rows: list[tuple[str, float, Lat, Lat | None]] = []
    for n in range(1, args.runs + 1):
        for with_writes in (False, True):
            load = os.getloadavg()[0]
            port = free_port()
            server = procs.start_server(url, port, args.workers)
            reads = Lat()
            writes = Lat()
            groups = [(read_requests(members, args.seed + n), readers, reads)]
            if with_writes:
                groups.append((order_requests(members, args.seed + n), writers, writes))
            try:
                procs.drive(port, key, groups, args.warmup, args.duration)
            finally:
                kill_tree(server)
                procs.children.remove(server)
            check_errors(reads, "read")
            check_errors(writes, "write")
            errors += reads.errors + writes.errors + (0 if reads.ns else 1)
            phase = f"{readers} readers" + (f" + {writers} order writers" if with_writes else "")
            line = summary("reads", reads, args.duration)
            if with_writes:
                line += "; " + summary("orders", writes, args.duration)
            log(f"  run {n}, {phase}, load {load:.1f}: {line}")
            rows.append(("with" if with_writes else "alone", load, reads, writes))

    def p(which: str, q: float) -> list[float]:
        return [be.pct(sorted(r.ns), q) for w, _, r, _ in rows if w == which]

    med = statistics.median
    log(f"sqlite member reads, {args.runs} run(s), min / median / max:")
    for which in ("alone", "with"):
        log(
            f"  {which:5s} p50 {be.spread(p(which, 50))} ms, p99 {be.spread(p(which, 99))} ms, "
            f"load {be.spread([ld for w, ld, _, _ in rows if w == which])}"
        )
    log(
        f"RESULT sqlite_read_p99_ms_alone={med(p('alone', 99)):.1f} "
        f"sqlite_read_p99_ms_with_writes={med(p('with', 99)):.1f} "
        f"load={med([ld for _, ld, _, _ in rows]):.1f} commit={be.git_commit()}"
    )
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--mode", default="redeem,read", help="redeem,read,sqlite,scale")
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "2")))
    ap.add_argument("--workers-list", default="1,2,4", help="--mode scale: server processes")
    ap.add_argument("--readers", type=int, default=8, help="--mode sqlite")
    ap.add_argument("--writers", type=int, default=8, help="--mode sqlite")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--pgbench-seconds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-pgbench", action="store_true", help="for profiling only")
    args = ap.parse_args()
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    unknown = set(modes) - {"redeem", "read", "sqlite", "scale"}
    if unknown:
        ap.error(f"unknown mode(s): {', '.join(sorted(unknown))}")

    procs.clean_up_on_exit()
    sys.path.insert(0, str(ROOT / "src"))
    log(procs.heading(f"bench_redeem_read {','.join(modes)}", be.git_commit()))
    errors = 0
    pg_modes = [m for m in modes if m != "sqlite"]
    if pg_modes:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure-postgres.sh"), be.BENCH_URL], check=True
        )
        t = time.monotonic()
        be.recreate_database(be.BENCH_DB)
        key = be.build_data(args.members, args.seed)
        members = be.member_ids()
        grant_points(be.BENCH_URL, members)
        check_ids_line_up()
        log(
            f"setup: fresh {be.BENCH_DB}, demo programme, {len(members)} members with "
            f"{GRANT} points each, in {time.monotonic() - t:.1f}s"
        )
        for m in pg_modes:
            errors += {"redeem": mode_redeem, "read": mode_read, "scale": mode_scale}[m](
                args, key, members
            )
    if "sqlite" in modes:
        errors += mode_sqlite(args)
    if errors:
        log(f"FAILED: {errors} error(s) in the load")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
    finally:
        cleanup()
