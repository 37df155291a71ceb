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
                return proc
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within {wait_s:g} s")
