"""While the database is unreachable the API answers 503 problem+json with Retry-After and
writes nothing; once it is back the same app serves again (no restart).

PostgreSQL: the app reaches the shared server through a small local TCP proxy that the test
closes (listener and every open connection) and reopens on the same port, so the server
itself is never stopped. SQLite: the database path cannot be opened, then it can.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from tests.conftest import BACKEND
from tests.itest import assert_problem, counts
from tests.server import free_port

from loyalist.app import RETRY_AFTER_S, create_app
from loyalist.config import Settings
from loyalist.http import forget_cached_keys
from loyalist.kit.db import Database


class Proxy:
    """A TCP forwarder 127.0.0.1:<port> → target that can be cut and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def open(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._listener = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """The database disappears: no new connections, every open one reset."""
        if self._listener is not None:
            with suppress(OSError):  # wakes the thread blocked in accept(); close() does not
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@contextmanager
def app_on(url: str, key: str) -> Iterator[TestClient]:
    db = Database(url)
    app = create_app(Settings(database_url=url), db=db)
    try:
        with TestClient(
            app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False
        ) as c:
            yield c
    finally:
        db.dispose()


def assert_unavailable(r: Any) -> None:
    body = assert_problem(r, 503, "service_unavailable")
    assert r.headers["retry-after"] == str(RETRY_AFTER_S)
    assert body["retry_after"] == RETRY_AFTER_S


def _order() -> dict[str, Any]:
    from tests.support import order_payload

    return order_payload("while-down", None, occurred_at="2026-06-10T11:00:00+08:00")


@pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL behind a proxy")
def test_postgres_unreachable_then_back(world: Any, db_url: str) -> None:
    parts = urlsplit(db_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.open()
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}"
        if parts.username
        else (f"127.0.0.1:{proxy.port}")
    )
    via_proxy = urlunsplit(parts._replace(netloc=netloc))
    with app_on(via_proxy, world.keys["hq"]) as c:
        assert c.get("/v1/members").status_code == 200
        before = counts(world.db)
        proxy.cut()
        forget_cached_keys()
        assert_unavailable(c.get("/v1/members"))
        assert_unavailable(c.post("/v1/orders", json=_order()))
        assert_unavailable(c.get("/v1/members/1"))
        proxy.open()
        r = c.get("/v1/members")
        assert r.status_code == 200, r.text
        assert counts(world.db) == before
        assert c.post("/v1/orders", json=_order()).status_code == 201
    proxy.cut()


@pytest.mark.skipif(BACKEND != "sqlite", reason="a SQLite file")
def test_sqlite_unavailable_then_back(world: Any, db_url: str, tmp_path: Path) -> None:
    real = Path(db_url.removeprefix("sqlite:///"))
    world.db.dispose()
    moved = tmp_path / "elsewhere.db"
    shutil.move(real, moved)
    for suffix in ("-wal", "-shm"):
        Path(f"{real}{suffix}").unlink(missing_ok=True)
    real.mkdir()  # a directory where the database file should be: it cannot be opened
    forget_cached_keys()
    with app_on(db_url, world.keys["hq"]) as c:
        assert_unavailable(c.get("/v1/members"))
        assert_unavailable(c.post("/v1/orders", json=_order()))
        real.rmdir()
        shutil.move(moved, real)
        r = c.get("/v1/members")
        assert r.status_code == 200, r.text
        assert c.post("/v1/orders", json=_order()).status_code == 201
