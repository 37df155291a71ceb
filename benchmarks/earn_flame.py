"""Where a server's CPU goes under the earn load (issue 11): a py-spy flame graph of
``loyalist serve --workers 2`` while 16 clients post orders, the same samples summed by the
library their innermost frame runs in, Loyalist's functions by inclusive share, and which of
them spend the SQLAlchemy/psycopg time.

What it does:
  1. uses bench_earn's database (``BENCH_DB``; ``--build`` makes it first: org, demo
     programme, members, API key — as ``make bench-earn``);
  2. starts the real server (``loyalist serve --no-scheduler --workers 2``);
  3. drives ``POST /v1/orders`` of bench_earn's basket mix from ``--clients`` keep-alive
     connections; after the warm-up, ``py-spy record --subprocesses`` samples the server's
     processes for ``--duration`` seconds of wall clock (stopped by SIGINT, inside the load;
     ``--gil``: only the thread holding each worker's interpreter lock, so waits on
     PostgreSQL, on the lock itself or on a queue are not counted — the samples are the
     server's Python CPU);
  4. from that one recording (``--format raw``, the collapsed stacks) prints the samples by
     library of their innermost frame (SQLAlchemy, psycopg, pydantic, FastAPI/Starlette,
     uvicorn/asyncio, the standard library, Loyalist's own packages: the "self" time of
     each), the top Loyalist functions by inclusive share (the samples whose stack contains
     them), the SQLAlchemy/psycopg samples by the Loyalist function that called in, and
     draws the flame graph from the same samples (``benchmarks/flame_svg.py``; ``--svg``,
     default var/bench/earn-flame.svg, the collapsed stacks beside it as ``.stacks.txt``).

An inclusive share of an ``async`` function (the middlewares) covers only the event loop's
samples: the thread pool's threads, where the order is recorded, start their own stacks.

Usage: .venv/bin/python benchmarks/earn_flame.py [--duration 20] [--svg FILE] [--build]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import bench_earn
import flame_svg
import procs
from procs import free_port, log, spawn

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")
_LIB = re.compile(r"site-packages/([A-Za-z0-9_]+)")
_OWN = re.compile(r"loyalist/([a-z_]+)")
_PROCESS = re.compile(r'^process (\d+):"')
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
ORM = {"SQLAlchemy", "psycopg"}
# the flame graph's fills by group (the rest: warm colours, as flamegraph.pl)
FILLS = {
    "Loyalist": "#f2c14e",
    "SQLAlchemy": "#e4572e",
    "psycopg": "#f08a4b",
    "FastAPI/Starlette": "#6fa8dc",
    "pydantic": "#93c47d",
    "uvicorn": "#b4a7d6",
    "Python standard library": "#bcbcbc",
}


def group_of(frame: str) -> str:
    """The library (or Loyalist package) a sampled frame runs in (py-spy names a frame's
    file relative to its ``sys.path`` entry: ``sqlalchemy/orm/session.py``)."""
    if _PROCESS.match(frame):
        return "process"
    m = _FRAME.match(frame)
    path = (m.group("file") if m else frame).replace("\\", "/")
    if path.startswith("<sqlalchemy generated"):  # its code-generated wrappers and __init__s
        return "SQLAlchemy"
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
    for frames, n in flame_svg.parse(collapsed).items():
        counts[group_of(frames[-1])] += n
    return counts


def own_function(frame: str) -> str | None:
    """``func (loyalist/pkg/module.py)`` for a frame in Loyalist's code (the line number
    dropped, so a function is one name wherever in it the sample fell); None otherwise."""
    m = _FRAME.match(frame)
    if m is None:
        return None
    path = m.group("file").replace("\\", "/")
    at = path.rfind("loyalist/")
    if at < 0 or (at > 0 and path[at - 1] != "/"):
        return None
    return f"{m.group('func')} ({path[at:]})"


def inclusive(stacks: Mapping[tuple[str, ...], int]) -> collections.Counter[str]:
    """Samples by Loyalist function, inclusive: a function's count is the samples whose
    stack contains it anywhere (itself or any callee), each stack counted once per function
    even when the function recurses."""
    counts: collections.Counter[str] = collections.Counter()
    for frames, n in stacks.items():
        for name in {f for f in map(own_function, frames) if f is not None}:
            counts[name] += n
    return counts


def orm_by_caller(
    stacks: Mapping[tuple[str, ...], int],
) -> dict[str, collections.Counter[str]]:
    """Which of our functions spend the ORM's and the driver's time: for every sample that
    runs inside SQLAlchemy or psycopg, the Loyalist function that called in (the Loyalist
    frame just outside the outermost SQLAlchemy/psycopg frame) and the entry it called
    (that outermost frame, without its line): ``{caller: {entry: samples}}``. Everything
    below the entry counts (the driver, the standard library, our own column types and
    event hooks the ORM calls back); a stack that enters from no Loyalist frame is under
    ``(no Loyalist caller)``."""
    out: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for frames, n in stacks.items():
        caller = "(no Loyalist caller)"
        for frame in frames:
            if group_of(frame) in ORM:
                m = _FRAME.match(frame)
                entry = f"{m.group('func')} ({m.group('file')})" if m else frame
                out[caller][entry] += n
                break
            caller = own_function(frame) or caller
    return dict(out)


def process_of(frames: Sequence[str]) -> int | None:
    """The pid of the process a stack ran in: py-spy's ``--subprocesses`` roots each stack
    in ``process <pid>:"…"`` frames, a child's nested under its parent's; the innermost
    one is the process sampled."""
    pids = [m.group(1) for f in frames if (m := _PROCESS.match(f))]
    return int(pids[-1]) if pids else None


def worker_samples(stacks: Mapping[tuple[str, ...], int], supervisor: int) -> int:
    """Samples of the server's worker processes: every process but the supervising one."""
    return sum(n for frames, n in stacks.items() if process_of(frames) not in (None, supervisor))


def py_spy() -> str:
    found = os.environ.get("PY_SPY") or shutil.which("py-spy", path=str(VENV_BIN))
    if not found:
        raise RuntimeError("py-spy is not installed: make install-dev")
    return found


def record(pid: int, fmt: str, out: Path, rate: int) -> subprocess.Popen[bytes]:
    """py-spy on ``pid`` and its subprocesses until it is sent SIGINT (then it writes
    ``out``). Not ``--duration``: py-spy counts that in samples (duration × rate), so when it
    falls behind on a busy machine a 20 s recording runs for 35 s or more."""
    cmd = [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--gil", "--rate", str(rate)]
    cmd += ["--format", fmt, "--output", str(out)]
    return spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def colour(frame: str) -> str:
    """A frame's fill: by its group (Loyalist's packages one colour), else a warm one."""
    group = group_of(frame)
    return FILLS.get("Loyalist" if group.startswith("loyalist.") else group) or (
        flame_svg.warm_colour(frame)
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument(
        "--margin",
        type=float,
        default=15.0,
        help="seconds the load runs on after the recording is due to end (py-spy's output)",
    )
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--svg", type=Path, default=ROOT / "var" / "bench" / "earn-flame.svg")
    ap.add_argument("--top", type=int, default=25, help="Loyalist functions to list")
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
    load_s = args.warmup + args.duration + args.margin
    load = threading.Thread(
        target=procs.drive, args=(port, key, [(make, args.clients, stats)], 0.0, load_s)
    )
    load_end = time.monotonic() + load_s
    load.start()
    threading.Event().wait(args.warmup)
    load_avg = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "stacks.txt"
        spy = record(server.pid, "raw", raw, args.rate)
        threading.Event().wait(args.duration)
        stopped_at = time.monotonic()
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=120)
        procs.children.remove(spy)
        if spy.returncode != 0 or not raw.exists():
            raise RuntimeError(f"py-spy failed: {err.decode()[-600:]}")
        collapsed = raw.read_text()
    # One recording for the table and the picture, and it must lie inside the load: a
    # recording that runs on after the clients stop samples idle workers.
    if stopped_at > load_end:
        raise RuntimeError(f"the recording ended {stopped_at - load_end:.1f} s after the load")
    args.svg.with_suffix(".stacks.txt").write_text(collapsed)  # the samples, for a second look
    load.join()
    procs.kill_tree(server)
    procs.children.remove(server)
    stacks = flame_svg.parse(collapsed)
    n = sum(stacks.values())
    in_workers = worker_samples(stacks, server.pid)
    counts = by_group(collapsed)
    log(f"orders answered: {stats.ok} ({stats.errors} errors); load average {load_avg:.1f}")
    log(
        f"samples: {n}, of them in the workers: {in_workers} "
        f"({100 * in_workers / max(n, 1):.1f} %; the rest: the supervising process)"
    )
    if n == 0 or in_workers < n / 2:
        raise RuntimeError("the workers are missing from the recording: no load on them?")
    log("innermost frame in                          share")
    for name, c in counts.most_common(25):
        log(f"  {name:<40} {100 * c / n:5.1f} %")
    log(
        f"Loyalist functions by inclusive share (the samples whose stack contains them), "
        f"top {args.top}:"
    )
    for name, c in inclusive(stacks).most_common(args.top):
        log(f"  {100 * c / n:5.1f} %  {name}")
    callers = orm_by_caller(stacks)
    orm = sum(sum(c.values()) for c in callers.values())
    log(
        f"inside SQLAlchemy/psycopg: {100 * orm / n:.1f} % of the samples; by the Loyalist "
        "function that called in, and the entries it called (share of all samples):"
    )
    ranked = sorted(callers.items(), key=lambda kv: -sum(kv[1].values()))
    for caller, entries in ranked[: args.top]:
        log(f"  {100 * sum(entries.values()) / n:5.1f} %  {caller}")
        for entry, c in entries.most_common(3):
            log(f"           {100 * c / n:5.1f} %  {entry}")
    args.svg.write_text(
        flame_svg.render(
            stacks,
            title=(
                f"POST /v1/orders: loyalist serve --workers {args.workers}, {args.clients} clients"
            ),
            subtitle=(
                f"commit {commit}, py-spy --gil --subprocesses, {n} samples at {args.rate} Hz "
                f"over {args.duration:g} s, load average {load_avg:.1f}"
            ),
            colour=colour,
            legend=FILLS.items(),
        )
    )
    log(f"flame graph: {args.svg} (the same samples: {args.svg.with_suffix('.stacks.txt')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
