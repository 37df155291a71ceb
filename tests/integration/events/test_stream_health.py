"""Consumer lag in GET /v1/health and on the console's event stream page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from tests.integration.events.consumer_support import emit_updates, make_effect_table
from tests.itest import assert_problem, counts

from loyalist.events import consumers
from loyalist.events.consumers import consumer
from loyalist.models import OutboxEvent


@pytest.fixture
def failing(world: Any) -> Iterator[None]:
    make_effect_table(world.db)

    def handler(s: Session, ev: OutboxEvent) -> None:
        if ev.type == "member.updated":
            raise ValueError("no mailbox for this member")

    consumer("t.health", max_attempts=1)(handler)
    consumer("t.slow")(lambda s, ev: None)
    yield
    consumers.unregister("t.health")
    consumers.unregister("t.slow")


def _run(world: Any, name: str) -> int:
    c = next(c for c in consumers.registered() if c.name == name)
    return int(world.db.run(lambda s: consumers.run_batch(s, c)))


def test_health_reports_every_consumer_lag(
    world: Any, client: Any, clock: Any, failing: None
) -> None:
    _run(world, "t.slow")  # the world's programme.published
    clock.advance(timedelta(seconds=42))
    emit_updates(world.db, 2)
    assert _run(world, "t.health") == 3  # 1 handled, 2 parked
    before = counts(world.db)
    r = client.get("/v1/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert counts(world.db) == before  # reading health writes nothing
    assert body["status"] == "degraded"
    assert body["stream"]["head"] == 3 and body["stream"]["unpositioned"] == 0
    lags = {c["name"]: c for c in body["stream"]["consumers"]}
    assert {k: lags["t.slow"][k] for k in ("position", "events_behind", "seconds_behind")} == {
        "position": 1,
        "events_behind": 2,
        "seconds_behind": 42.0,
    }
    assert {k: lags["t.health"][k] for k in ("position", "events_behind", "parked")} == {
        "position": 3,
        "events_behind": 0,
        "parked": 2,
    }
    assert lags["t.health"]["last_error"] == "ValueError: no mailbox for this member"
    spec = client.get("/openapi.json").json()
    ok = spec["paths"]["/v1/health"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/HealthOut")
    with TestClient(client.app) as anonymous:
        assert_problem(anonymous.get("/v1/health"), 401)


def test_console_stream_page_shows_lag_and_parked_events(
    world: Any, clock: Any, failing: None
) -> None:
    from tests.console import console_client, login, make_users

    make_users(world.db)
    emit_updates(world.db, 1)
    _run(world, "t.health")
    with console_client(world.db) as c:
        login(c, world.db, "admin")
        html = c.get("/admin/stream").text
        assert "事件流" in html and "搁置的事件" in html
        assert 'data-consumer="t.health"' in html
        assert "no mailbox for this member" in html
    with console_client(world.db) as c:
        login(c, world.db, "sh1.staff")
        assert c.get("/admin/stream").status_code == 403
