"""One HTTP attempt against a real local receiver: answers, timeouts, refused targets."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loyalist.webhooks import sender


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        srv: Any = self.server
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        srv.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        status, headers, answer, delay = srv.reply
        if delay:
            time.sleep(delay)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client gave up (timeout test)
            self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    srv: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.seen = []
    srv.reply = (204, {}, b"", 0.0)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
    yield srv
    srv.shutdown()
    srv.server_close()


def _post(url: str, *, allow: bool = True, timeout: float = 5.0) -> sender.Answer:
    return sender.post(
        url,
        {"content-type": "application/json", "webhook-id": "e1"},
        b'{"a":1}',
        allow_private=allow,
        connect_timeout_s=timeout,
        timeout_s=timeout,
    )


def test_posts_the_body_and_headers_and_keeps_the_answer(receiver: Any) -> None:
    receiver.reply = (503, {"Retry-After": "120"}, b"busy" * 1000, 0.0)
    a = _post(receiver.url)
    assert a.status_code == 503
    assert a.retry_after == "120"
    assert a.error is None
    assert a.body is not None and len(a.body) == 2048 and a.body.startswith("busybusy")
    path, headers, body = receiver.seen[0]
    assert path == "/hook"
    assert body == b'{"a":1}'
    assert headers["webhook-id"] == "e1"
    assert headers["host"] == receiver.url.split("/")[2]


def test_a_private_address_is_refused_without_the_setting(receiver: Any) -> None:
    a = _post(receiver.url, allow=False)
    assert a.status_code is None
    assert a.error is not None and a.error.startswith("refused:") and "127.0.0.1" in a.error
    assert receiver.seen == []  # nothing was sent
    with pytest.raises(sender.TargetRefused):
        sender.resolve("http://localhost:9/x", allow_private=False)
    with pytest.raises(sender.TargetRefused):
        sender.resolve("http://[::1]:9/x", allow_private=False)
    with pytest.raises(sender.TargetRefused):
        sender.resolve("http://169.254.169.254/latest/meta-data", allow_private=False)
    with pytest.raises(sender.TargetRefused):
        sender.resolve("ftp://127.0.0.1/x", allow_private=True)


def test_a_slow_receiver_times_out(receiver: Any) -> None:
    receiver.reply = (200, {}, b"", 2.0)
    a = _post(receiver.url, timeout=0.3)
    assert a.status_code is None
    assert a.error is not None and a.error.startswith("timeout")


def test_nobody_listening_is_an_error_not_an_exception() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    a = _post(f"http://127.0.0.1:{port}/x")
    assert a.status_code is None
    assert a.error is not None and "ConnectError" in a.error
