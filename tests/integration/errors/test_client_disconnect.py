"""A client that goes away before its body is read is not an error of the server."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tests.aio import run_in_fresh_loop

from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.kit.db import Database


def test_a_body_never_received_answers_499_and_logs_no_error(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(database_url=db.url), db=db)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/orders",
        "raw_path": b"/v1/orders",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"20")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    with caplog.at_level(logging.INFO):
        run_in_fresh_loop(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "client went away" in caplog.text
