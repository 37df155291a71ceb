"""Processes the benchmarks start: a real `loyalist serve`, pgbench, and their clean-up.

Every process is started in its own session and remembered, so an interrupted benchmark
(Ctrl-C, SIGTERM, an exception) never leaves a server running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
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
