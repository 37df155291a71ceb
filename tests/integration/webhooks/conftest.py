"""A real HTTP receiver on 127.0.0.1 (in a thread) that can be down, answer per a script,
and records every request; helpers to run the worker's steps and verify signatures."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from loyalist import bootstrap
from loyalist.config import get_settings
from loyalist.events import consumers
from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.kit.db import Database

bootstrap.configure()  # the webhooks job kind and consumer, as in the worker


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> Any:
        """Checked by the standardwebhooks package, at the time the request was signed."""
        import standardwebhooks.webhooks as sw

        at = datetime.fromtimestamp(int(self.headers["webhook-timestamp"]), UTC)

        class At(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
                return at

        real = sw.datetime
        sw.datetime = At  # type: ignore[misc]
        try:
            return Webhook(secret).verify(self.body, self.headers)
        finally:
            sw.datetime = real  # type: ignore[misc]


Reply = tuple[int, dict[str, str]]


@dataclass
class Receiver:
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    # Answers in order; when empty, ``default``.
    script: list[Reply] = field(default_factory=list)
    default: Reply = (200, {})
    _server: Any = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/loyalist"

    def _reply(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            return self.script.pop(0) if self.script else self.default

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = receiver._reply(Request(self.path, headers, body))
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.requests]


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LOYALIST_WEBHOOKS_ALLOW_PRIVATE=true: the receiver is on 127.0.0.1."""
    monkeypatch.setenv("LOYALIST_WEBHOOKS_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("LOYALIST_WEBHOOKS_ALLOW_PRIVATE")
    get_settings.cache_clear()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.up()
    yield r
    r.down()


def pump(db: Database) -> int:
    """One worker tick: positions, consumers, then every due job (until none is due)."""
    db.run(events.assign_positions)
    n = consumers.run_pending(db)
    return n + queue.run_until_empty(db)


@pytest.fixture
def tick(db: Database) -> Callable[[], int]:
    return lambda: pump(db)
