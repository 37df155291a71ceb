"""Where an order's wall-clock time goes under load: what the server's threads, the event
loop and PostgreSQL's backends are doing while 16 clients post orders.

Runs on the bench database ``bench_earn.py`` built (``BENCH_DB``; run ``bench_earn.py``
once first): starts ``loyalist serve --no-scheduler --workers N`` with a wall-clock stack
sampler in every server process (``benchmarks/wall_sampler/sitecustomize.py``, via
``PYTHONPATH``; nothing in Loyalist changes), drives ``bench_earn``'s 16-client order load,
and meanwhile samples ``pg_stat_activity`` of the bench database every 10 ms. Prints:

- orders/s, p50/p99 and the load average (wall clock, so only indicative on a shared machine);
- CPU per order of the server, PostgreSQL and this load generator;
- commits per order (``pg_stat_database.xact_commit``) and WAL flushes per order
  (``pg_stat_wal.wal_sync``);
- the server's threads by what they were doing (kernel state + Python stack, classified:
  a database round trip and which one, the positioning lock, the GIL, running), as the
  average number of threads in each state: with ``c`` requests in flight per worker, that
  is how the ``c`` requests' time divides;
- PostgreSQL's client backends by state and wait event (``idle in transaction`` +
  ``ClientRead`` = the backend waits for the server's Python);
- the heaviest collapsed stacks (``--stacks``), and all of them into ``--out`` for a flame
  graph.

Usage: BENCH_DB=... .venv/bin/python benchmarks/earn_waits.py [--duration 15] [--stacks 15]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import psycopg

import bench_earn
import procs
from procs import cleanup, free_port, kill_tree, log, on_signal

HERE = Path(__file__).resolve().parent


class PgSampler(threading.Thread):
    """pg_stat_activity of one database every ``interval`` seconds."""

    def __init__(self, db: str, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.ticks = 0
        self.stop = threading.Event()
        # CPU seconds of this database's backends: (at the first sight, at the last),
        # sampled through the run, so a backend that leaves before the end still counts
        # (bench_earn.postgres_cpu_seconds reads the same backends at two moments only)
        self.cpu: dict[int, tuple[float, float]] = {}

    def _note_cpu(self, pids: set[int]) -> None:
        for pid, now in bench_earn.cpu_seconds_of(pids).items():
            # a backend first seen after the first tick was born during the run
            first = self.cpu[pid][0] if pid in self.cpu else (now if self.ticks <= 1 else 0.0)
            self.cpu[pid] = (first, now)

    def backend_cpu_seconds(self) -> float:
        return sum(last - first for first, last in self.cpu.values())

    def run(self) -> None:
        with psycopg.connect(
            f"host={bench_earn.PG_HOST} port={bench_earn.PG_PORT} user=postgres dbname=postgres",
            autocommit=True,
        ) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT state, coalesce(wait_event_type, '-'), coalesce(wait_event, '-'),"
                    " left(query, 40), pid FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'",
                    (self.db,),
                ).fetchall()
                self.ticks += 1
                if self.ticks % 20 == 1:
                    self._note_cpu({row[4] for row in rows})
                for state, wtype, wevent, query, _pid in rows:
                    what = state or "?"
                    if state == "active":
                        what += f" [{query.split()[0] if query else '?'}]"
                    self.counts[f"{what:<28} {wtype}:{wevent}"] += 1
                time.sleep(self.interval)
            self._note_cpu(set(self.cpu))


def run_queue_wait_s(pids: list[int]) -> float:
    """Seconds the threads of ``pids`` have spent runnable but waiting for a core
    (``/proc/<pid>/task/<tid>/schedstat``, second field; threads that ended are not counted)."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def tree(pid: int) -> list[int]:
    try:
        root = psutil.Process(pid)
        return [pid] + [c.pid for c in root.children(recursive=True)]
    except psutil.Error:
        return [pid]


def postgres_run_queue_s(db: str) -> bench_earn.PgCpu:
    """:func:`run_queue_wait_s` so far of ``db``'s client backends, by pid: subtract two
    readings as :func:`bench_earn.postgres_cpu_seconds`'s (the backends connected at the
    later one; not every ``postgres`` process of the machine, which counted other
    databases' work and PostgreSQL's shared processes)."""
    return bench_earn.PgCpu({pid: run_queue_wait_s([pid]) for pid in bench_earn.backend_pids(db)})


def pg_counters(db: str) -> tuple[int, int, int]:
    """(xact_commit of ``db``, WAL flushes, WAL writes) so far."""
    out = bench_earn.psql(
        f"SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'), "
        "wal_sync, wal_write FROM pg_stat_wal"
    )
    a, b, c = out.split("|")
    return int(a), int(b), int(c)


# --------------------------------------------------------------------------- classification


def classify(state: str, kind: str, frames: list[str]) -> str | None:
    """What a sampled thread was doing; None for threads that carry no request.

    ``state`` is the kernel's: ``R`` on a core or waiting for one, ``S``/``D`` asleep. A
    thread asleep inside the driver's wait is waiting for PostgreSQL's answer *or* for the
    GIL once the answer came (the driver takes the GIL back before its Python frame
    moves on); the PostgreSQL side's samples tell the two apart."""
    names = [f.split(":")[1] for f in frames]
    files = [f.split(":")[0] for f in frames]
    inner, inner_file = (names[-1], files[-1]) if frames else ("?", "?")
    asleep = state in {"S", "D"}
    if kind == "loop":
        if inner_file == "runners.py":  # in uvloop's C: idle in epoll, or running C code
            return "event loop: idle in epoll" if asleep else "event loop: in uvloop/httptools"
        return "event loop: waiting for the GIL" if asleep else "event loop: running Python"
    if (
        not any(
            "loyalist" in f or n in {"run_idempotent", "_authenticate"}
            for f, n in zip(files, names, strict=True)
        )
        and "_sequence_quietly" not in names
        and "_pass" not in names
    ):
        return None  # idle pool threads, the sampler, uvicorn's health-check pong
    where = "request"
    if "_pass" in names and "_run" in names:  # the positioner thread (session 9), no request
        where = "positioner thread"
    elif "_sequence_quietly" in names:
        where = "positions after commit"
    elif "_authenticate" in names:
        where = "API-key check"
    if inner_file == "connection.py" and inner == "wait":
        if "do_ping" in names:
            what = "pool pre-ping"
        elif "commit" in names[-6:]:
            what = "COMMIT"
        else:
            what = "statement"
        if asleep:
            return f"{where}: {what}: waiting for PostgreSQL or the GIL"
        return f"{where}: {what}: answer in, waiting for a core"
    if asleep and inner in {"acquire", "wait", "__enter__"}:
        return f"{where}: waiting for a lock ({inner_file}:{inner})"
    if asleep:
        return f"{where}: Python, waiting for the GIL"
    return f"{where}: Python, running (or waiting for a core)"


def read_samples(out_dir: Path) -> dict[int, Counter[str]]:
    per_pid: dict[int, Counter[str]] = {}
    for path in sorted(out_dir.glob("wall-*.txt")):
        pid = int(path.stem.split("-")[1])
        c: Counter[str] = Counter()
        for line in path.read_text().splitlines():
            key, _, n = line.rpartition(" ")
            c[key] = int(n)
        per_pid[pid] = c
    return per_pid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sample-ms", type=float, default=10.0)
    ap.add_argument("--stacks", type=int, default=12, help="heaviest stacks to print")
    ap.add_argument("--out", type=Path, help="write the collapsed stacks here")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(cleanup)
    sys.path.insert(0, str(bench_earn.ROOT / "src"))

    out_dir = Path(tempfile.mkdtemp(prefix="earn-waits-"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE / "wall_sampler"), os.environ.get("PYTHONPATH")) if p
    )
    os.environ["LOYALIST_WALL_SAMPLE_DIR"] = str(out_dir)
    os.environ["LOYALIST_WALL_SAMPLE_MS"] = str(args.sample_ms)

    key = bench_earn.new_key()
    members = bench_earn.member_ids()
    load = os.getloadavg()
    server = procs.start_server(bench_earn.BENCH_URL, port := free_port(), args.workers)
    log(
        f"earn_waits: commit {bench_earn.git_commit()}, load average "
        f"{' '.join(f'{x:.1f}' for x in load)}, {args.clients} clients, {args.workers} workers"
    )
    pg = PgSampler(bench_earn.BENCH_DB)
    c0 = pg_counters(bench_earn.BENCH_DB)
    srv0 = bench_earn.server_cpu_seconds(server.pid)
    pg0 = bench_earn.postgres_cpu_seconds()
    pg.start()
    t_cpu0 = time.thread_time()
    server_pids = tree(server.pid)
    q0 = [run_queue_wait_s([os.getpid()]), run_queue_wait_s(server_pids)]
    pq0 = postgres_run_queue_s(bench_earn.BENCH_DB)
    conns: dict[int, int] = {}

    def count_connections() -> None:  # which worker holds the clients' connections
        time.sleep(args.warmup + 1)
        for child in psutil.Process(server.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                conns[child.pid] = sum(
                    1
                    for c in child.net_connections(kind="tcp")
                    if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                )

    counter = threading.Thread(target=count_connections, daemon=True)
    counter.start()
    stats = procs.Lat()
    make = bench_earn.order_requests(members, args.clients, args.seed)
    procs.drive(port, key, [(make, args.clients, stats)], args.warmup, args.duration)
    seconds = args.duration
    client_cpu = time.thread_time() - t_cpu0
    q1 = [run_queue_wait_s([os.getpid()]), run_queue_wait_s(server_pids)]
    pq1 = postgres_run_queue_s(bench_earn.BENCH_DB)
    counter.join()
    pg.stop.set()
    pg.join()
    srv1 = bench_earn.server_cpu_seconds(server.pid)
    pg1 = bench_earn.postgres_cpu_seconds()
    c1 = pg_counters(bench_earn.BENCH_DB)
    time.sleep(1.2)  # the samplers' last dump
    kill_tree(server)
    procs.children.remove(server)

    lat = sorted(stats.ns)
    total = max(stats.ok, 1)
    log(
        f"orders: {len(lat) / seconds:.1f}/s, p50 {bench_earn.pct(lat, 50):.1f} ms, "
        f"p99 {bench_earn.pct(lat, 99):.1f} ms, mean {statistics.fmean(lat) / 1e6:.1f} ms; "
        f"{stats.ok} orders incl. warm-up, errors {stats.errors}; "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    log(
        f"CPU per order: server {1000 * (srv1 - srv0) / total:.2f} ms, "
        f"PostgreSQL {1000 * (pg1 - pg0) / total:.2f} ms (the bench database's backends at the"
        " start and the end, as bench_earn; sampled every ~0.2 s, those that left included:"
        f" {1000 * pg.backend_cpu_seconds() / total:.2f} ms), "
        f"load generator {1000 * client_cpu / total:.2f} ms"
    )
    log(
        "waiting for a core (run queue, summed over threads) per order: "
        f"server {1000 * (q1[1] - q0[1]) / total:.2f} ms, PostgreSQL "
        f"{1000 * (pq1 - pq0) / total:.2f} ms (the bench database's backends, as the CPU"
        " above), this process (load generator and samplers) "
        f"{1000 * (q1[0] - q0[0]) / total:.2f} ms; the load generator's priority: nice "
        f"{os.nice(0)}"
    )
    log(
        f"per order: {(c1[0] - c0[0]) / total:.2f} commits (xact_commit of the bench db), "
        f"{(c1[1] - c0[1]) / total:.2f} WAL flushes, {(c1[2] - c0[2]) / total:.2f} WAL writes "
        "(whole cluster)"
    )

    per_pid = read_samples(out_dir)
    all_stacks: Counter[str] = Counter()
    for pid, counts in per_pid.items():
        ticks = sum(n for k, n in counts.items() if k.split(";")[1] == "loop")
        if ticks == 0:
            continue
        cats: Counter[str] = Counter()
        for k, n in counts.items():
            state, kind, *frames = k.split(";")
            cat = classify(state, kind, frames)
            if cat is None:
                continue
            cats[cat] += n
            all_stacks[f"{cat};" + ";".join(frames)] += n
        if not any(c.startswith("request") or c.startswith("positions") for c in cats):
            continue  # the supervising process
        log(
            f"server process {pid}: {conns.get(pid, '?')} client connection(s), {ticks} samples;"
            " average threads per state:"
        )
        for cat, n in sorted(cats.items(), key=lambda kv: -kv[1]):
            log(f"  {n / ticks:6.2f}  {cat}")
        in_threads = (
            sum(n for c, n in cats.items() if not c.startswith(("event loop", "positioner")))
            / ticks
        )
        if pid in conns:  # each connection has one request in flight or on its way
            log(
                f"  {conns[pid] - in_threads:6.2f}  requests not in a thread (the event loop:"
                " parsing, validating, answering, or waiting for it; or on the wire/client)"
            )
    log(f"PostgreSQL client backends of {bench_earn.BENCH_DB} ({pg.ticks} samples), average:")
    for what, n in pg.counts.most_common():
        log(f"  {n / max(pg.ticks, 1):6.2f}  {what}")
    if args.out:
        args.out.write_text("".join(f"{k} {n}\n" for k, n in all_stacks.items()))
    if args.stacks:
        log("heaviest request stacks (innermost 6 frames):")
        for k, n in all_stacks.most_common(args.stacks):
            cat, *frames = k.split(";")
            log(f"  {n:6d}  {cat}\n          " + " < ".join(reversed(frames[-6:])))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
