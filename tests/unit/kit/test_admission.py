"""Admission control: a bounded number of requests in progress, 503 + Retry-After beyond."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from tests.aio import run_in_fresh_loop

from loyalist.kit.admission import Admission, Pressure


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


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_waiting": -1},
        {"retry_after_s": 0},
        {"retry_after_s": 31, "retry_after_max_s": 30},
        {"window_s": 0},
    ],
)
def test_impossible_settings_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Admission(Gate(), limit=1, wait_s=1, **kwargs)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(response.content)
    assert (body["type"], body["code"], body["status"]) == (
        "https://loyalist.dev/problems/overloaded",
        "overloaded",
        503,
    )
    assert int(response.headers["retry-after"]) == body["retry_after"]
    assert body["detail"] == (
        f"1 requests are in progress; nothing was written. Try again after "
        f"{body['retry_after']} s with the same Idempotency-Key."
    )
    return body


def test_when_max_waiting_requests_wait_the_next_is_refused_at_once() -> None:
    async def scenario() -> None:
        gate = Gate()
        app = Admission(gate, limit=1, wait_s=30, max_waiting=1)
        async with _client(app) as c:
            held = asyncio.create_task(c.get("/v1/x/held"))
            while gate.started < 1:
                await asyncio.sleep(0.01)
            waiting = asyncio.create_task(c.get("/v1/x/waiting"))
            while app.waiting < 1:
                await asyncio.sleep(0.01)
            # the wait queue is full: answered long before the 30 s wait
            t0 = asyncio.get_running_loop().time()
            refused = await asyncio.wait_for(c.post("/v1/orders", json={}), timeout=5)
            assert asyncio.get_running_loop().time() - t0 < 5
            body = _problem(refused)
            assert (body["instance"], body["retry_after"]) == ("/v1/orders", 1)
            assert gate.started == 1  # neither the refused nor the waiting one reached the app
            assert (app.refused, app.refused_at_once, app.waiting, app.in_progress) == (1, 1, 1, 1)
            gate.open.set()
            statuses = [r.status_code for r in await asyncio.gather(held, waiting)]
            assert statuses == [200, 200]  # the waiting one got the slot and was served
            assert (gate.started, app.waiting, app.in_progress, app.refused) == (2, 0, 0, 1)

    run_in_fresh_loop(scenario())


def test_max_waiting_zero_never_waits() -> None:
    async def scenario() -> None:
        gate = Gate()
        app = Admission(gate, limit=1, wait_s=30, max_waiting=0)
        async with _client(app) as c:
            held = asyncio.create_task(c.get("/v1/x/held"))
            while gate.started < 1:
                await asyncio.sleep(0.01)
            refused = await asyncio.wait_for(c.get("/v1/x/next"), timeout=5)
            assert _problem(refused)["instance"] == "/v1/x/next"
            assert (gate.started, app.refused, app.refused_at_once) == (1, 1, 1)
            gate.open.set()
            assert (await held).status_code == 200

    run_in_fresh_loop(scenario())


def test_max_waiting_defaults_to_the_limit() -> None:
    assert Admission(Gate(), limit=5, wait_s=1).max_waiting == 5
    assert Admission(Gate(), limit=5, wait_s=1, max_waiting=2).max_waiting == 2


def test_pressure_counts_the_last_window_s_whole_seconds() -> None:
    clock = Clock(1000.2)
    p = Pressure(2, clock)
    for _ in range(3):
        p.refused()
    p.served()
    clock.now = 1001.9  # the next second: both seconds count
    p.refused()
    p.served()
    p.served()
    assert p.totals() == (4, 3)
    clock.now = 1002.0  # second 1000 has left the window
    assert p.totals() == (1, 2)
    p.refused()  # second 1002 reuses second 1000's bucket, emptied first
    assert p.totals() == (2, 2)
    clock.now = 1010.5  # nothing lately
    assert p.totals() == (0, 0)


@pytest.mark.parametrize(
    ("refused", "served", "expected"),
    [
        (0, 0, 1),  # no pressure: the minimum
        (1, 0, 1),  # one refusal, nothing served yet
        (5, 100, 1),  # a few refusals among many served
        (100, 100, 1),
        (101, 100, 2),  # ratios round up
        (350, 100, 4),
        (1200, 120, 10),  # run A's peak: 600 refused/s against 60 served/s
        (3000, 100, 30),
        (10_000, 10, 30),  # clamped to the maximum
        (500, 0, 30),  # refusing while nothing finishes
    ],
)
def test_retry_after_is_refused_over_served_clamped(
    refused: int, served: int, expected: int
) -> None:
    clock = Clock()
    app = Admission(Gate(), limit=1, wait_s=1, clock=clock)
    for _ in range(refused):
        app.pressure.refused()
    for _ in range(served):
        app.pressure.served()
    assert app.retry_after() == expected
    clock.now += 2  # the window has passed: back to the minimum
    assert app.retry_after() == 1


def test_a_refusal_under_pressure_says_the_grown_retry_after_and_it_falls_back() -> None:
    async def scenario() -> None:
        clock = Clock()
        gate = Gate()
        app = Admission(gate, limit=1, wait_s=30, max_waiting=0, clock=clock)
        async with _client(app) as c:
            held = asyncio.create_task(c.get("/v1/x/held"))
            while gate.started < 1:
                await asyncio.sleep(0.01)
            for _ in range(40):  # simulated pressure: 40 served, 279 refused lately
                app.pressure.served()
            for _ in range(279):
                app.pressure.refused()
            refused = await c.post("/v1/orders", json={})  # the 280th refusal: 280/40 = 7
            assert refused.headers["retry-after"] == "7"
            assert _problem(refused)["retry_after"] == 7
            app.retry_after_max_s = 5
            capped = await c.post("/v1/orders", json={})
            assert (capped.headers["retry-after"], _problem(capped)["retry_after"]) == ("5", 5)
            clock.now += 2  # two quiet seconds later: 1 refused, 0 served
            calm = await c.post("/v1/orders", json={})
            assert (calm.headers["retry-after"], _problem(calm)["retry_after"]) == ("1", 1)
            assert (gate.started, app.refused, app.refused_at_once) == (1, 3, 3)
            gate.open.set()
            assert (await held).status_code == 200
            assert app.pressure.totals() == (1, 1)  # the held request counted as served

    run_in_fresh_loop(scenario())


def test_the_app_is_wrapped_outermost_with_the_configured_limit(tmp_path: Any) -> None:
    from loyalist.app import create_app
    from loyalist.config import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        max_in_flight=7,
        admission_wait_s=0.5,
        admission_max_waiting=3,
        admission_retry_after_max_s=20,
    )
    app = create_app(settings)
    outer = app.user_middleware[0]
    assert outer.cls is Admission
    assert outer.kwargs == {"limit": 7, "wait_s": 0.5, "max_waiting": 3, "retry_after_max_s": 20}
    defaults = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}"))
    assert defaults.user_middleware[0].kwargs == {
        "limit": 8,
        "wait_s": 2.0,
        "max_waiting": 64,
        "retry_after_max_s": 30,
    }
