"""Where a server's CPU goes under the earn load (issue 11): a py-spy flame graph of
``loyalist serve --workers 2`` while 16 clients post orders, and the same samples summed by
the library their innermost frame runs in.

What it does:
  1. uses bench_earn's database (``BENCH_DB``; ``--build`` makes it first: org, demo
     programme, members, API key — as ``make bench-earn``);
  2. starts the real server (``loyalist serve --no-scheduler --workers 2``);
  3. drives ``POST /v1/orders`` of bench_earn's basket mix from ``--clients`` keep-alive
     connections; after the warm-up, ``py-spy record --subprocesses`` samples every worker
     for ``--duration`` seconds twice, one recording after the other (``--gil``: only the
     thread holding each worker's interpreter lock, so waits on PostgreSQL, on the lock
     itself or on a queue are not counted — the samples are the server's Python CPU);
  4. writes the flame graph (``--svg``, default var/bench/earn-flame.svg; the collapsed
     stacks beside it as ``.stacks.txt``) and prints the
     samples by library: SQLAlchemy, psycopg, pydantic, FastAPI/Starlette, uvicorn/asyncio,
     the standard library, and Loyalist's own packages — the "self" time of each.

Usage: .venv/bin/python benchmarks/earn_flame.py [--duration 20] [--svg FILE] [--build]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import bench_earn
import procs
from procs import free_port, log, spawn

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_LIB = re.compile(r"site-packages/([A-Za-z0-9_]+)")
_OWN = re.compile(r"loyalist/([a-z_]+)")
GROUPS = {
    "sqlalchemy": "SQLAlchemy",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "fastapi": "FastAPI/Starlette",
    "starlette": "FastAPI/Starlette",
    "uvicorn": "uvicorn",
    "anyio": "anyio (thread pool)",
    "orjson": "orjson",
}


def group_of(frame: str) -> str:
    """The library (or Loyalist package) a sampled frame runs in (py-spy names a frame's
    file relative to its ``sys.path`` entry: ``sqlalchemy/orm/session.py``)."""
    m = _FRAME.match(frame)
    path = (m.group("file") if m else frame).replace("\\", "/")
    if own := _OWN.search(path):
        return f"loyalist.{own.group(1)}"
    top = _LIB.search(path)
    first = top.group(1) if top else path.split("/", 1)[0].removesuffix(".py")
    if first in GROUPS:
        return GROUPS[first]
    if first in sys.stdlib_module_names or first.startswith("<"):
        return "Python standard library"
    return first or "?"


def by_group(collapsed: str) -> collections.Counter[str]:
    """Samples by the group of their innermost frame, from py-spy's ``--format raw``
    (``frame;frame;…;frame count`` per line, outermost first)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        counts[group_of(leaf)] += int(n)
    return counts


def py_spy() -> str:
    found = os.environ.get("PY_SPY") or shutil.which("py-spy", path=str(VENV_BIN))
    if not found:
        raise RuntimeError("py-spy is not installed: make install-dev")
    return found


def record(pid: int, seconds: float, fmt: str, out: Path, rate: int) -> subprocess.Popen[bytes]:
    cmd = [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--gil", "--rate", str(rate)]
    cmd += ["--duration", str(round(seconds)), "--format", fmt, "--output", str(out)]
    return spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--svg", type=Path, default=ROOT / "var" / "bench" / "earn-flame.svg")
    ap.add_argument("--build", action="store_true", help="build the bench database first")
    args = ap.parse_args()
    procs.clean_up_on_exit()
    commit = bench_earn.git_commit()
    log(procs.heading("Earn path flame graph (py-spy)", commit))
    members = bench_earn.bench_members(args.build, args.members, args.seed)
    if not members:
        return 2
    key = bench_earn.new_key()
    port = free_port()
    server = bench_earn.start_server(port, args.workers)
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    stats = procs.Lat()
    make = bench_earn.order_requests(members, args.clients, args.seed)
    total = args.warmup + 2 * args.duration + 4
    load = threading.Thread(
        target=procs.drive, args=(port, key, [(make, args.clients, stats)], 0.0, total)
    )
    load.start()
    threading.Event().wait(args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "stacks.txt"
        for fmt, out in (("raw", raw), ("flamegraph", args.svg)):  # one after the other
            spy = record(server.pid, args.duration, fmt, out, args.rate)
            _, err = spy.communicate(timeout=args.duration + 120)
            procs.children.remove(spy)
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode()[-600:]}")
        collapsed = raw.read_text()
    args.svg.with_suffix(".stacks.txt").write_text(collapsed)  # the samples, for a second look
    load.join()
    procs.kill_tree(server)
    procs.children.remove(server)
    counts = by_group(collapsed)
    n = sum(counts.values())
    log(
        f"orders answered: {stats.ok} ({stats.errors} errors); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    log(f"samples: {n} (the first recording; the flame graph is the second)")
    log("innermost frame in                          share")
    for name, c in counts.most_common(25):
        log(f"  {name:<40} {100 * c / n:5.1f} %")
    log(f"flame graph: {args.svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
