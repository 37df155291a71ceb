"""The floor of POST /v1/orders as seen from Python (issue 11): the writes of
``benchmarks/earn_floor.sql`` sent by Python threads through psycopg 3 — the server's own
driver — with no web framework, no ORM and no rules, beside pgbench running the same script
in the same run.

pgbench is a C client: its tps is what PostgreSQL can do with an order's writes. This
benchmark answers the next question: how much of that is left when the client is Python
doing nothing but sending the same statements? The same shape as the server: ``--processes``
processes (the server's workers) with ``--clients`` threads in all (16), each thread with its
own connection, the statements sent with bound parameters (psycopg prepares them on the
server after a few runs, as it does for the server). Each run gets a fresh copy of the bench
database (``CREATE DATABASE … TEMPLATE``), as ``bench_earn.run_floor`` does.

The script is read from earn_floor.sql itself (``\\set`` with ``random(a, b)`` or one integer
operation, SQL with ``:name`` variables, ``\\gset`` after a ``RETURNING``), so it cannot drift
from the pgbench floor.

Prints, per run, both rates, the CPU per transaction of the Python processes and of
PostgreSQL, and as its last line
``RESULT pyfloor_ratio=<Python tps ÷ pgbench tps> py_floor_tps=<..> floor_tps=<..>``
(medians over ``--runs``).

Needs the bench database of ``bench_earn.py`` (``BENCH_DB``, default ``loyalist_bench``):
run ``make bench-earn`` once first, or pass ``--build``.

Usage: .venv/bin/python benchmarks/earn_pyfloor.py [--runs 3] [--seconds 15] [--build]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_earn
import procs
from procs import log

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "earn_floor.sql"
PY_DB = os.environ.get("BENCH_PYFLOOR_DB", "loyalist_pyfloor")

_VAR = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_RANDOM = re.compile(r"random\(\s*(\S+?)\s*,\s*(\S+?)\s*\)$")
_BINARY = re.compile(r"(\S+)\s*([-+*/])\s*(\S+)$")


@dataclass(frozen=True)
class Step:
    """One line of the script: a ``\\set`` (``name``, ``expr``) or a statement (``sql`` with
    psycopg placeholders, ``gset``: keep the returned row's columns as variables)."""

    name: str = ""
    expr: str = ""
    sql: str = ""
    gset: bool = False
    text: str = ""  # the same statement for SQLAlchemy's text(): :name, colons escaped in literals


def parse(text: str) -> list[Step]:
    steps: list[Step] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("--"):
            continue
        if line.startswith("\\set "):
            _, name, expr = line.split(None, 2)
            steps.append(Step(name=name, expr=expr))
            continue
        gset = line.endswith("\\gset")
        if gset:
            line = line.removesuffix("\\gset").rstrip()
        line = line.removesuffix(";")
        if "%" in line:
            raise ValueError(f"a literal % would need escaping for psycopg: {line[:80]}")
        steps.append(Step(sql=_placeholders(line), gset=gset, text=_sqlalchemy_text(line)))
    return steps


def _placeholders(sql: str) -> str:
    """``:name`` → ``%(name)s`` outside string literals (pgbench leaves ``':earn'`` alone
    because no variable has that name; here literals are simply never touched)."""
    parts = sql.split("'")
    return "'".join(_VAR.sub(r"%(\1)s", p) if i % 2 == 0 else p for i, p in enumerate(parts))


def _sqlalchemy_text(sql: str) -> str:
    parts = sql.split("'")
    return "'".join(p if i % 2 == 0 else p.replace(":", "\\:") for i, p in enumerate(parts))


def evaluate(expr: str, env: dict[str, Any], rng: random.Random) -> int:
    """The ``\\set`` expressions earn_floor.sql uses: ``random(a, b)``, ``a <op> b``, a value."""

    def value(tok: str) -> int:
        return int(env[tok[1:]]) if tok.startswith(":") else int(tok)

    if m := _RANDOM.match(expr):
        return rng.randint(value(m.group(1)), value(m.group(2)))
    if m := _BINARY.match(expr):
        a, op, b = value(m.group(1)), m.group(2), value(m.group(3))
        return {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    return value(expr.strip())


def run_script(cur: Any, steps: list[Step], env: dict[str, Any], rng: random.Random) -> None:
    for st in steps:
        if st.name:
            env[st.name] = evaluate(st.expr, env, rng)
            continue
        cur.execute(st.sql, env)
        if st.gset:
            row = cur.fetchone()
            assert row is not None and cur.description is not None
            for col, v in zip(cur.description, row, strict=True):
                env[col.name] = v


def run_script_sqlalchemy(
    conn: Any, steps: list[tuple[Step, Any]], env: dict[str, Any], rng: random.Random
) -> None:
    """The same through SQLAlchemy Core (``text()`` compiled once, then its cache)."""
    for st, clause in steps:
        if st.name:
            env[st.name] = evaluate(st.expr, env, rng)
            continue
        result = conn.execute(clause, env)
        if st.gset:
            row = result.first()
            assert row is not None
            env.update(row._mapping)


def _process(
    driver: str,
    url: str,
    threads: int,
    first_client: int,
    members: int,
    warm: float,
    seconds: float,
    out: Any,
) -> None:
    """One process: ``threads`` connections running the script until the time is up; sends
    (transactions in the measured window, process CPU seconds in it, errors)."""
    import psycopg
    from sqlalchemy import create_engine, text

    steps = parse(SCRIPT.read_text())
    engine = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
        pool_size=threads,
    )
    clauses = [(st, text(st.text) if st.text else None) for st in steps]
    counts = [0] * threads
    errors: list[str] = []
    measuring = threading.Event()
    done = threading.Event()

    def client(i: int) -> None:
        rng = random.Random(first_client + i)
        env: dict[str, Any] = {"client_id": first_client + i, "members": members}
        try:
            if driver == "sqlalchemy":
                with engine.connect() as sa:
                    while not done.is_set():
                        run_script_sqlalchemy(sa, clauses, env, rng)
                        if measuring.is_set():
                            counts[i] += 1
                return
            with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
                while not done.is_set():
                    run_script(cur, steps, env, rng)
                    if measuring.is_set():
                        counts[i] += 1
        except Exception as exc:  # reported by the parent, which stops the benchmark
            errors.append(repr(exc))
            done.set()

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    time.sleep(warm)
    c0 = time.process_time()
    measuring.set()
    time.sleep(seconds)
    measuring.clear()
    c1 = time.process_time()
    done.set()
    for w in workers:
        w.join(30)
    out.put((sum(counts), c1 - c0, errors[:1]))


@dataclass
class Run:
    py_tps: float  # psycopg alone
    sa_tps: float  # through SQLAlchemy Core text()
    floor_tps: float  # pgbench
    py_cpu_ms: float  # the Python processes' CPU per transaction (psycopg)
    sa_cpu_ms: float  # the same through SQLAlchemy
    pg_cpu_ms: float  # PostgreSQL's CPU per transaction, during the psycopg run
    load: float

    @property
    def ratio(self) -> float:
        return self.py_tps / self.floor_tps

    @property
    def sa_ratio(self) -> float:
        return self.sa_tps / self.floor_tps


def fresh_copy(name: str) -> None:
    bench_earn.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    bench_earn.psql(f'CREATE DATABASE "{name}" TEMPLATE "{bench_earn.BENCH_DB}"')


def python_floor(
    driver: str, members: int, processes: int, clients: int, warm: float, seconds: float
) -> tuple[float, float, float]:
    """(tps, Python CPU ms per transaction, PostgreSQL CPU ms per transaction)."""
    fresh_copy(PY_DB)
    url = f"postgresql://postgres@{bench_earn.PG_HOST}:{bench_earn.PG_PORT}/{PY_DB}"
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    firsts = [sum(per[:i]) for i in range(processes)]
    workers = [
        ctx.Process(target=_process, args=(driver, url, n, f, members, warm, seconds, out))
        for n, f in zip(per, firsts, strict=True)
    ]
    for w in workers:
        w.start()
    time.sleep(warm)
    pg0 = bench_earn.postgres_cpu_seconds(PY_DB)  # its database's backends only
    time.sleep(seconds)
    pg1 = bench_earn.postgres_cpu_seconds(PY_DB)
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(30)
    for r in results:
        if r[2]:
            raise RuntimeError(f"a Python client failed: {r[2][0]}")
    tx = sum(r[0] for r in results)
    cpu = sum(r[1] for r in results)
    if tx == 0:
        raise RuntimeError("the Python clients completed no transaction")
    return tx / seconds, 1000 * cpu / tx, 1000 * (pg1 - pg0) / tx


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--processes", type=int, default=2, help="like serve --workers 2")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--build", action="store_true", help="build the bench database first")
    args = ap.parse_args()
    procs.clean_up_on_exit()
    commit = bench_earn.git_commit()
    log(procs.heading("Python floor of the earn path (earn_floor.sql from psycopg)", commit))
    members = len(bench_earn.bench_members(args.build, args.members, 42))
    if members == 0:
        return 2
    runs: list[Run] = []
    for n in range(1, args.runs + 1):
        load = os.getloadavg()[0]
        shape = (members, args.processes, args.clients, args.warmup, args.seconds)
        tps, py_ms, pg_ms = python_floor("psycopg", *shape)
        sa_tps, sa_ms, _ = python_floor("sqlalchemy", *shape)
        floor = bench_earn.run_floor(members, args.clients, 2, round(args.seconds))
        runs.append(Run(tps, sa_tps, floor, py_ms, sa_ms, pg_ms, load))
        log(
            f"run {n}: load {load:.1f}; psycopg {tps:.1f} tx/s ({py_ms:.2f} ms Python CPU/tx, "
            f"PostgreSQL {pg_ms:.2f} ms/tx), SQLAlchemy {sa_tps:.1f} tx/s ({sa_ms:.2f} ms/tx), "
            f"pgbench {floor:.1f} tx/s"
        )
    for name in (PY_DB, bench_earn.FLOOR_DB):
        bench_earn.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    def spread(xs: list[float], fmt: str) -> str:
        return " / ".join(fmt.format(x) for x in (min(xs), med(xs), max(xs)))

    log("min / median / max")
    log(f"psycopg tx/s       {spread([r.py_tps for r in runs], '{:.1f}')}")
    log(f"SQLAlchemy tx/s    {spread([r.sa_tps for r in runs], '{:.1f}')}")
    log(f"pgbench tx/s       {spread([r.floor_tps for r in runs], '{:.1f}')}")
    log(f"psycopg ratio      {spread([r.ratio for r in runs], '{:.3f}')}")
    log(f"SQLAlchemy ratio   {spread([r.sa_ratio for r in runs], '{:.3f}')}")
    log(f"psycopg CPU ms/tx  {spread([r.py_cpu_ms for r in runs], '{:.2f}')}")
    log(f"SQLAlchemy ms/tx   {spread([r.sa_cpu_ms for r in runs], '{:.2f}')}")
    log(f"PG CPU ms/tx       {spread([r.pg_cpu_ms for r in runs], '{:.2f}')}")
    log(f"load average       {spread([r.load for r in runs], '{:.1f}')}")
    log(
        f"RESULT pyfloor_ratio={med([r.ratio for r in runs]):.3f} "
        f"sqlalchemy_floor_ratio={med([r.sa_ratio for r in runs]):.3f} "
        f"py_floor_tps={med([r.py_tps for r in runs]):.1f} "
        f"floor_tps={med([r.floor_tps for r in runs]):.1f} commit={commit}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
