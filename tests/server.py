"""A real Loyalist server in a subprocess, for end-to-end tests (concurrency, crashes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from loyalist.kit.db import Database
from loyalist.programme import service as programmes
from tests.support import DEMO_PROGRAMME, World, build_world

ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain_programme(rewards: list[dict[str, Any]]) -> dict[str, Any]:
    """The demo programme with predictable earning (1 point per ¥1, no campaigns or caps,
    tiers out of reach) and the given rewards."""
    doc: dict[str, Any] = yaml.safe_load(DEMO_PROGRAMME.read_text(encoding="utf-8"))
    doc["earning"] = {"base": {"points_per_unit": 1, "unit_minor": 100}}
    for i, level in enumerate(doc["tiers"]["levels"]):
        level["threshold"] = 0 if i == 0 else 10**12 * i
    doc["rewards"] = rewards
    return doc


def prepare(url: str, rewards: list[dict[str, Any]]) -> World:
    """The standard world on ``url``, then the test programme applied on top."""
    db = Database(url)
    try:
        world = build_world(db)
        with db.transaction() as s:
            programmes.apply(s, programmes.parse(plain_programme(rewards)), actor="test")
    finally:
        db.dispose()
    return world


class Server:
    """``python -m uvicorn loyalist.app:create_app --factory`` on a free local port."""

    def __init__(self, db_url: str, log: Path) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "LOYALIST_DATABASE_URL": self.db_url, "LOYALIST_RUN_SCHEDULER": "0"}

    def start(self, timeout: float = 180) -> None:  # a busy 2-core machine imports slowly
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "loyalist.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=self.env(),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()  # leave no orphan server behind
                self.proc.wait(timeout=30)
                raise RuntimeError(f"server did not start within {timeout:.0f} s")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing, like a power cut for the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)

    def errors_logged(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(ln for ln in text.splitlines() if "Traceback" in ln or "ERROR" in ln)


@contextmanager
def running_server(db_url: str, log: Path) -> Iterator[Server]:
    server = Server(db_url, log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``loyalist ARGS`` against ``db_url``."""
    return subprocess.run(
        [sys.executable, "-m", "loyalist.cli.main", *args],
        env={**os.environ, "LOYALIST_DATABASE_URL": db_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
