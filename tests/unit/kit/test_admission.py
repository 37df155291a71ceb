"""Admission control: a bounded number of requests in progress, 503 + Retry-After beyond."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from tests.aio import run_in_fresh_loop

from loyalist.kit.admission import Admission


class Gate:
    """An ASGI app whose requests wait until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.started += 1
        if scope["path"] != "/healthz":
            await self.open.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_beyond_the_limit_a_request_waits_then_gets_503_with_retry_after() -> None:
    async def scenario() -> None:
        gate = Gate()
        app = Admission(gate, limit=2, wait_s=0.2, retry_after_s=3)
        async with _client(app) as c:
            held = [asyncio.create_task(c.get(f"/v1/x/{i}")) for i in range(2)]
            while gate.started < 2:
                await asyncio.sleep(0.01)
            assert app.in_progress == 2
            refused = await c.post("/v1/orders", json={})  # no slot within 0.2 s
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "3"
            assert refused.headers["content-type"] == "application/problem+json"
            body = json.loads(refused.content)
            assert (body["code"], body["status"], body["retry_after"]) == ("overloaded", 503, 3)
            assert body["instance"] == "/v1/orders"
            assert gate.started == 2  # the refused request never reached the app
            health = await c.get("/healthz")  # exempt: answers while the slots are taken
            assert health.status_code == 200
            # a request that gets a slot within its wait is served
            waiting = asyncio.create_task(c.get("/v1/x/late"))
            await asyncio.sleep(0.05)
            gate.open.set()
            assert [r.status_code for r in await asyncio.gather(*held, waiting)] == [200] * 3
            assert (app.refused, app.in_progress) == (1, 0)

    run_in_fresh_loop(scenario())


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Admission(Gate(), limit=0, wait_s=1)


def test_the_app_is_wrapped_outermost_with_the_configured_limit(tmp_path: Any) -> None:
    from loyalist.app import create_app
    from loyalist.config import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'x.db'}", max_in_flight=7, admission_wait_s=0.5
    )
    app = create_app(settings)
    outer = app.user_middleware[0]
    assert outer.cls is Admission
    assert (outer.kwargs["limit"], outer.kwargs["wait_s"]) == (7, 0.5)
