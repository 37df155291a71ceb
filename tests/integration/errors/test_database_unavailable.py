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
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from tests.conftest import BACKEND
from tests.itest import assert_problem, counts
from tests.server import free_port

from loyalist.app import RETRY_AFTER_S, create_app
from loyalist.config import Settings
from loyalist.http import forget_cached_keys
from loyalist.kit import db as kit_db
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


# --- pooled connections: checked at checkout without a round trip (issue 11) -------------


def _backend_pid(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's pool")
def test_a_pooled_connection_the_server_ended_is_replaced_at_checkout(db_url: str) -> None:
    db = Database(db_url)
    try:
        first = _backend_pid(db)  # back in the pool, idle
        libpq = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(libpq, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone() == (True,)
            deadline = time.monotonic() + 10
            while admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (first,)
            ).fetchone() != (0,):
                assert time.monotonic() < deadline, "the backend did not end"
                time.sleep(0.02)
        # the same pooled connection would fail its first statement; it is replaced instead
        second = _backend_pid(db)
        assert second != first
        assert db.engine.pool.checkedout() == 0
    finally:
        db.dispose()


@pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's pool")
def test_a_connection_used_recently_is_handed_out_without_a_ping(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(db_url)
    pings: list[object] = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda c: pings.append(c) or ping(c))
    try:
        first = _backend_pid(db)
        assert (_backend_pid(db), pings) == (first, [])  # hot: reused, no round trip
        monkeypatch.setattr(kit_db, "PING_AFTER_IDLE_S", 0.0)
        assert _backend_pid(db) == first  # idle "too long": pinged, alive, reused
        assert len(pings) == 1
    finally:
        db.dispose()
