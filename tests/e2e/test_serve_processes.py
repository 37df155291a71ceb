"""The processes of ``python -m loyalist.serve`` with two workers (issue 11: server memory):
the supervisor and its workers only — no multiprocessing resource tracker beside them — and
each worker started with ``MALLOC_ARENA_MAX=2`` unless the operator set their own."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from tests.server import free_port

pytestmark = pytest.mark.timeout(300)


def _start(tmp_path: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"},
        "LOYALIST_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        **env_extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "loyalist.serve", "127.0.0.1", str(port), "2", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240  # two workers import the app on a busy machine
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        children = psutil.Process(proc.pid).children(recursive=True)
        if sum(1 for c in children if _listens(c, port)) >= 2:  # both workers up
            return proc, port
        time.sleep(0.5)
    _stop(proc)
    raise AssertionError("the workers did not start listening in time")


def _listens(worker: psutil.Process, port: int) -> bool:
    try:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port
            for c in worker.net_connections(kind="tcp")
        )
    except psutil.Error:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _answer(conn: socket.socket) -> bytes:
    """One whole HTTP/1.1 answer (head and Content-Length body) off a kept connection;
    b"" if the server closed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _arena_max(pid: int) -> str | None:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"MALLOC_ARENA_MAX=")]
    return found[0].decode() if found else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and SO_REUSEPORT")
def test_two_workers_and_no_resource_tracker(tmp_path: Path) -> None:
    proc, port = _start(tmp_path, {})
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 2
        for child in children:
            assert child.ppid() == proc.pid
            assert "resource_tracker" not in " ".join(child.cmdline())
            assert _listens(child, port)  # each a worker with a socket of its own
            assert _arena_max(child.pid) == "2"
        assert _arena_max(proc.pid) is None  # the supervisor's own environment as given
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert (answer.status_code, answer.json()["status"]) == (200, "ok")
        # A kept connection outlives uvicorn's default 5 s idle (serve.KEEP_ALIVE_S): a
        # till waiting out a Retry-After sends again without a new connection.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
            conn.sendall(request)
            assert _answer(conn).startswith(b"HTTP/1.1 200")
            time.sleep(6.5)
            conn.sendall(request)
            assert _answer(conn).startswith(b"HTTP/1.1 200")
    finally:
        _stop(proc)
    assert proc.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and SO_REUSEPORT")
def test_an_operator_s_own_arena_setting_is_kept(tmp_path: Path) -> None:
    proc, _port = _start(tmp_path, {"MALLOC_ARENA_MAX": "4"})
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
        assert [_arena_max(c.pid) for c in children] == ["4", "4"]
    finally:
        _stop(proc)
