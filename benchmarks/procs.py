"""What the benchmarks share: the processes they start (a real `loyalist serve`, pgbench)
and their clean-up, the heading of a run, the keep-alive HTTP/1.1 load clients, and the
cachegrind driver of the instruction counts.

Every process is started in its own session and remembered, so an interrupted benchmark
(Ctrl-C, SIGTERM, an exception) never leaves a server running.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

children: list[subprocess.Popen[bytes]] = []


def log(msg: str) -> None:
    print(msg, flush=True)


def kill_tree(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop a process we started (and its children): TERM first, then KILL."""
    if proc.poll() is not None:
        return
    try:
        tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        tree = [proc.pid]
    with contextlib.suppress(ProcessLookupError):  # started with start_new_session=True
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(grace)


def cleanup() -> None:
    while children:
        kill_tree(children.pop())


def on_signal(signum: int, _frame: Any) -> None:
    cleanup()
    raise SystemExit(128 + signum)


def clean_up_on_exit() -> None:
    """Stop every process started here when the benchmark ends: normally, by an exception,
    SIGTERM or SIGHUP."""
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(cleanup)


def heading(name: str, commit: str) -> str:
    """The first line of a run: what, on how many CPUs, when, which commit, the load."""
    return (
        f"{name} on {os.cpu_count()} CPU(s), {datetime.now(UTC).isoformat(timespec='seconds')}"
        f", commit {commit}, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def spawn(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    children.append(proc)
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    """`loyalist serve` on ``url`` without the scheduler, once it answers /healthz."""
    env = {
        **os.environ,
        "LOYALIST_DATABASE_URL": url,
        "LOYALIST_LOG_LEVEL": "warning",
        "LOYALIST_RUN_SCHEDULER": "false",
    }
    cmd = [
        str(VENV_BIN / "loyalist"),
        "serve",
        "--no-scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = spawn(cmd, env=env, cwd=ROOT)
    # Workers import the whole app; on a shared, busy 2-core machine that can take a minute.
    wait_s = float(os.environ.get("BENCH_SERVER_START_S", "180"))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"the server did not answer /healthz within {wait_s:g} s")
    # One worker answering is not all of them: on a busy machine the others may still be
    # importing the app, and keep-alive clients that connect now all stay on the first one
    # (a 16/0 split makes a 2-worker run a 1-worker run). Wait until every worker has
    # accepted a connection of ours.
    while workers > 1 and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.ExitStack() as stack:
            probes = [
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
                for _ in range(4 * workers)
            ]
            for s in probes:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for s in probes:
                s.recv(4096)
            if sum(1 for n in connections_by_worker(proc, port) if n) >= workers:
                return proc
        time.sleep(0.5)
    if workers > 1:
        raise RuntimeError(f"not all {workers} workers answered within {wait_s:g} s")
    return proc


def connections_by_worker(proc: subprocess.Popen[bytes], port: int) -> list[int]:
    """Established client connections each child process of the server holds on ``port``
    (uvicorn's workers; its other children hold none)."""
    counts: list[int] = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                counts.append(
                    sum(
                        1
                        for c in child.net_connections(kind="tcp")
                        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                    )
                )
    return counts


# --------------------------------------------------------------------------- HTTP load


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 answer off a keep-alive connection: status, header block, body."""
    head = await reader.readuntil(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if m is None:
        raise RuntimeError(f"no content-length in answer: {head[:200]!r}")
    body = await reader.readexactly(int(m.group(1)))
    return int(head[9:12]), head, body


# A request: method, path, body (or None); made per client and per sequence number.
Make = Callable[[int, int], tuple[str, str, bytes | None]]


@dataclass
class Lat:
    """What a group of clients saw: latencies (ns) of the successes inside the measured
    window, successes in all (warm-up included), errors and a few of their answers."""

    ns: list[int] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)


async def _client(
    idx: int,
    port: int,
    key: str,
    make: Make,
    window: tuple[float, float],
    stop: asyncio.Event,
    stats: Lat,
) -> None:
    """One keep-alive HTTP/1.1 connection sending ``make``'s requests one after another
    (a write with an Idempotency-Key of its own)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n".encode()
    seq = 0
    try:
        while not stop.is_set():
            seq += 1
            method, path, body = make(idx, seq)
            parts = [f"{method} {path} HTTP/1.1\r\n".encode(), auth]
            if body is not None:
                parts += [
                    b"Content-Type: application/json\r\nIdempotency-Key: ",
                    uuid.uuid4().hex.encode(),
                    b"\r\nContent-Length: ",
                    str(len(body)).encode(),
                    b"\r\n\r\n",
                    body,
                ]
            else:
                parts.append(b"\r\n")
            t0 = time.perf_counter_ns()
            writer.write(b"".join(parts))
            status, _head, payload = await read_answer(reader)
            t1 = time.perf_counter_ns()
            if 200 <= status < 300:
                if window[0] <= time.monotonic() <= window[1]:
                    stats.ns.append(t1 - t0)
                stats.ok += 1
            else:
                stats.errors += 1
                if len(stats.samples) < 5:
                    stats.samples.append(f"{status}: {payload[:300].decode(errors='replace')}")
    finally:
        writer.close()


async def _drive(
    port: int, key: str, groups: list[tuple[Make, int, Lat]], warmup: float, duration: float
) -> None:
    stop = asyncio.Event()
    t0 = time.monotonic()
    window = (t0 + warmup, t0 + warmup + duration)
    tasks = []
    n = 0
    for make, clients, stats in groups:
        for _ in range(clients):
            tasks.append(asyncio.create_task(_client(n, port, key, make, window, stop, stats)))
            n += 1
    await asyncio.sleep(window[1] - time.monotonic())
    stop.set()
    done, _ = await asyncio.wait(tasks, timeout=30)
    for t in done:
        if t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


def drive(
    port: int, key: str, groups: list[tuple[Make, int, Lat]], warmup: float, duration: float
) -> None:
    """The clients of every group at once (e.g. readers and writers; ``(make, clients,
    stats)``, client numbers counted across the groups), for ``warmup`` + ``duration``
    seconds; latencies are kept for the last ``duration``."""
    try:
        import uvloop

        uvloop.run(_drive(port, key, groups, warmup, duration))
    except ImportError:  # pragma: no cover
        asyncio.run(_drive(port, key, groups, warmup, duration))


# --------------------------------------------------------------------------- cachegrind


def _cachegrind(script: Path, src: Path, child: list[str], out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.Popen(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={out}",
            sys.executable,
            str(script),
            *child,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _instructions(proc: subprocess.Popen[bytes], out: Path) -> int:
    _o, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(err.decode(errors="replace")[-3000:])
    m = re.search(r"^summary:\s+(\d+)", out.read_text(), re.M)
    assert m, "no cachegrind summary"
    return int(m.group(1))


def instructions_per_step(
    script: Path, src: Path, child: Callable[[int], list[str]], base: int, n: int
) -> tuple[int, int, float]:
    """Instructions (valgrind cachegrind) of ``script`` run with the arguments ``child(base)``
    and, at the same time (one core each), with ``child(base + n)``, both importing ``src``:
    (low, high, (high - low) / n). Start-up, imports and warm-up cancel out in the difference;
    work of other processes (PostgreSQL) is not counted."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = (Path(tmp) / "low.out", Path(tmp) / "high.out")
        runs = (
            _cachegrind(script, src, child(base), outs[0]),
            _cachegrind(script, src, child(base + n), outs[1]),
        )
        low, high = (_instructions(p, o) for p, o in zip(runs, outs, strict=True))
    return low, high, (high - low) / n
