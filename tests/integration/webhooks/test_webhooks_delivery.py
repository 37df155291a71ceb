"""Deliveries end to end: events → the webhooks consumer → delivery jobs → a real HTTP
receiver on 127.0.0.1, signatures verified with the standardwebhooks package, the clock
moved through the retry schedule while the queue runs due jobs."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.webhooks.conftest import Receiver, pump
from tests.support import api_client

from loyalist.config import get_settings
from loyalist.events import service as events
from loyalist.kit.db import Database
from loyalist.models import OutboxEvent, WebhookAttempt, WebhookDelivery
from loyalist.webhooks import domain

pytestmark = pytest.mark.usefixtures("allow_private")


def _endpoint(world: Any, receiver: Receiver, key: str = "hq", **fields: Any) -> dict[str, Any]:
    with api_client(world.db, world.keys[key]) as c:
        r = c.post("/v1/webhooks/endpoints", json={"url": receiver.url, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _member(world: Any, phone: str, store: str = "sh1", key: str = "hq") -> int:
    with api_client(world.db, world.keys[key]) as c:
        r = c.post("/v1/members", json={"phone": phone, "home_store": store})
    assert r.status_code == 201, r.text
    member_id: int = r.json()["id"]
    return member_id


def _events(db: Database, types: tuple[str, ...] = ()) -> list[OutboxEvent]:
    with db.transaction() as s:
        q = select(OutboxEvent).order_by(OutboxEvent.id)
        if types:
            q = q.where(OutboxEvent.type.in_(types))
        return list(s.scalars(q))


def _deliveries(db: Database) -> list[WebhookDelivery]:
    with db.transaction() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _attempts(db: Database, delivery_id: int) -> list[WebhookAttempt]:
    with db.transaction() as s:
        q = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
        return list(s.scalars(q.order_by(WebhookAttempt.number)))


def test_an_event_is_posted_signed_and_recorded(world: Any, receiver: Receiver) -> None:
    ep = _endpoint(world, receiver, event_types=["member.created"])
    member_id = _member(world, "13800000001")
    pump(world.db)
    [event] = _events(world.db, ("member.created",))
    [req] = receiver.requests
    assert req.path == "/hooks/loyalist"
    assert req.headers["content-type"] == "application/json"
    assert req.webhook_id == event.event_id
    payload = req.verify(ep["secret"])
    with world.db.transaction() as s:
        ev = s.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event.event_id))
        assert ev is not None
        assert payload == json.loads(json.dumps(events.as_dict(ev)))
    assert payload["type"] == "member.created"
    assert payload["member_id"] == member_id
    [d] = _deliveries(world.db)
    assert (d.status, d.attempts, d.last_status_code, d.event_id) == (
        "succeeded",
        1,
        200,
        event.event_id,
    )
    [a] = _attempts(world.db, d.id)
    assert (a.number, a.run, a.status_code, a.outcome, a.error, a.response_body) == (
        1,
        1,
        200,
        "succeeded",
        None,
        "ok",
    )
    assert a.webhook_timestamp == int(req.headers["webhook-timestamp"])
    # running the worker again sends nothing more
    pump(world.db)
    assert len(receiver.requests) == 1


def test_a_receiver_down_for_an_hour_gets_everything_once_with_stable_ids(
    world: Any, receiver: Receiver, clock: Any
) -> None:
    ep = _endpoint(world, receiver)  # every event type
    receiver.down()
    start = clock.now()
    for i in range(4):
        _member(world, f"1380000010{i}", store="sh1" if i % 2 else "sz1")
    down_until = start + timedelta(hours=1)
    ticks = 0
    while clock.now() < down_until:
        pump(world.db)
        clock.advance(timedelta(seconds=30))
        ticks += 1
        if ticks == 60:  # more events while it is down
            _member(world, "13800000200")
    assert receiver.requests == []
    receiver.up()
    for _ in range(30):  # 2 h 30 min more, five minutes at a time
        pump(world.db)
        clock.advance(timedelta(minutes=5))
    pump(world.db)

    sent = {e.event_id for e in _events(world.db)}
    assert len(sent) >= 5
    # every event arrived, once, with its own id; each verifies with the endpoint's secret
    assert Counter(receiver.ids()) == Counter({eid: 1 for eid in sent})
    for req in receiver.requests:
        assert req.verify(ep["secret"])["id"] == req.webhook_id
    deliveries = _deliveries(world.db)
    assert {d.event_id for d in deliveries} == sent
    assert {d.status for d in deliveries} == {"succeeded"}
    for d in deliveries:
        attempts = _attempts(world.db, d.id)
        assert [a.number for a in attempts] == list(range(1, d.attempts + 1))
        assert attempts[-1].status_code == 200
        failed = attempts[:-1]
        assert failed, "it was down when the event occurred"
        for n, a in enumerate(failed, start=1):
            assert a.status_code is None and a.outcome == "retry"
            assert a.error is not None and "ConnectError" in a.error
            # the schedule: immediately, 5 s, 5 min, 30 min, 2 h …
            assert a.next_attempt_at == a.attempted_at + domain.SCHEDULE[n]
            assert attempts[n].attempted_at >= a.next_attempt_at


def test_410_disables_the_endpoint_and_stops_deliveries(world: Any, receiver: Receiver) -> None:
    ep = _endpoint(world, receiver, event_types=["member.created"])
    receiver.default = (410, {})
    _member(world, "13800000301")
    pump(world.db)
    assert len(receiver.requests) == 1
    with api_client(world.db, world.keys["hq"]) as c:
        got = c.get(f"/v1/webhooks/endpoints/{ep['id']}").json()
    assert (got["enabled"], got["disabled_reason"]) == (False, "gone")
    [d] = _deliveries(world.db)
    assert (d.status, d.attempts, d.last_status_code) == ("failed", 1, 410)
    [a] = _attempts(world.db, d.id)
    assert (a.outcome, a.next_attempt_at) == ("gone", None)
    _member(world, "13800000302")
    pump(world.db)
    assert len(receiver.requests) == 1
    assert len(_deliveries(world.db)) == 1


def test_retry_after_sets_the_next_attempt(world: Any, receiver: Receiver, clock: Any) -> None:
    _endpoint(world, receiver, event_types=["member.created"])
    receiver.script = [(503, {"Retry-After": "600"}), (429, {"Retry-After": "1"})]
    _member(world, "13800000401")
    t0 = clock.now()
    pump(world.db)
    [d] = _deliveries(world.db)
    assert d.next_attempt_at == t0 + timedelta(seconds=600)  # not the scheduled 5 s
    clock.advance(timedelta(seconds=599))
    pump(world.db)
    assert len(receiver.requests) == 1
    clock.advance(timedelta(seconds=1))
    pump(world.db)
    assert len(receiver.requests) == 2
    [d] = _deliveries(world.db)
    # a Retry-After shorter than the schedule does not bring the next attempt forward
    assert d.next_attempt_at == clock.now() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=5))
    pump(world.db)
    assert len(receiver.requests) == 3
    assert _deliveries(world.db)[0].status == "succeeded"
    assert len({r.webhook_id for r in receiver.requests}) == 1


def test_a_store_scoped_endpoint_gets_only_its_stores_events(world: Any, clock: Any) -> None:
    sh1, sz1 = Receiver(), Receiver()
    sh1.up()
    sz1.up()
    try:
        clock.advance(timedelta(seconds=1))  # after the world's own programme.published
        _endpoint(world, sh1, key="sh1")
        _endpoint(world, sz1, key="sz1")
        a = _member(world, "13800000501", store="sh1")
        b = _member(world, "13800000502", store="sz1")
        with world.db.transaction() as s:
            wide = events.emit(s, "programme.published", {"version": 99, "by": "test"}).event_id
        pump(world.db)
        by_member = {e.member_id: e.event_id for e in _events(world.db, ("member.created",))}
        assert set(sh1.ids()) == {by_member[a], wide}
        assert set(sz1.ids()) == {by_member[b], wide}
    finally:
        sh1.down()
        sz1.down()


def test_rotation_sends_both_signatures_during_the_overlap(
    world: Any, receiver: Receiver, clock: Any
) -> None:
    ep = _endpoint(world, receiver, event_types=["member.created"])
    old = ep["secret"]
    with api_client(world.db, world.keys["hq"]) as c:
        r = c.post(
            f"/v1/webhooks/endpoints/{ep['id']}/rotate-secret", json={"overlap_seconds": 3600}
        )
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != old and new.startswith("whsec_")
    assert r.json()["previous_secret_until"] is not None
    _member(world, "13800000601")
    pump(world.db)
    [req] = receiver.requests
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    assert req.verify(new)["type"] == "member.created"
    assert req.verify(old)["type"] == "member.created"
    clock.advance(timedelta(hours=1))  # the overlap is over
    _member(world, "13800000602")
    pump(world.db)
    last = receiver.requests[-1]
    assert len(last.headers["webhook-signature"].split(" ")) == 1
    assert last.verify(new)["type"] == "member.created"
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        last.verify(old)


def test_replaying_a_delivery_and_a_time_range(world: Any, receiver: Receiver, clock: Any) -> None:
    ep = _endpoint(world, receiver, event_types=["member.created"])
    t0 = clock.now()
    _member(world, "13800000701")
    clock.advance(timedelta(minutes=10))
    _member(world, "13800000702")
    pump(world.db)
    assert len(receiver.requests) == 2
    first, second = _deliveries(world.db)
    clock.advance(timedelta(hours=1))
    with api_client(world.db, world.keys["hq"]) as c:
        r = c.post(f"/v1/webhooks/deliveries/{first.id}/replay")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["attempts"]) == ("pending", 1)
        pump(world.db)
        assert receiver.ids()[2] == first.event_id  # same webhook-id
        again = receiver.requests[2]
        assert int(again.headers["webhook-timestamp"]) == int(clock.now().timestamp())
        assert (
            again.headers["webhook-timestamp"] != receiver.requests[0].headers["webhook-timestamp"]
        )
        assert again.verify(ep["secret"]) == receiver.requests[0].verify(ep["secret"])
        detail = c.get(f"/v1/webhooks/deliveries/{first.id}").json()
        assert detail["status"] == "succeeded"
        assert [(a["number"], a["run"]) for a in detail["attempt_log"]] == [(1, 1), (2, 2)]
        # a range: only the second event occurred in it
        r = c.post(
            f"/v1/webhooks/endpoints/{ep['id']}/replay",
            json={
                "since": (t0 + timedelta(minutes=5)).isoformat(),
                "until": (t0 + timedelta(minutes=15)).isoformat(),
            },
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"deliveries": 1}
        pump(world.db)
    assert receiver.ids()[3:] == [second.event_id]
    assert len(_deliveries(world.db)) == 2


def test_a_range_replay_opens_deliveries_for_events_before_the_endpoint(
    world: Any, receiver: Receiver, clock: Any
) -> None:
    t0 = clock.now()
    _member(world, "13800000801")
    pump(world.db)
    clock.advance(timedelta(minutes=1))
    ep = _endpoint(world, receiver, event_types=["member.created"])
    pump(world.db)
    assert receiver.requests == []  # it did not exist when the event occurred
    with api_client(world.db, world.keys["hq"]) as c:
        r = c.post(
            f"/v1/webhooks/endpoints/{ep['id']}/replay",
            json={"since": t0.isoformat(), "until": clock.now().isoformat()},
        )
    assert r.json() == {"deliveries": 1}
    pump(world.db)
    [event] = _events(world.db, ("member.created",))
    assert receiver.ids() == [event.event_id]


def test_a_private_address_is_refused_at_delivery_time_without_the_setting(
    world: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _endpoint(world, receiver, event_types=["member.created"])
    monkeypatch.setenv("LOYALIST_WEBHOOKS_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    _member(world, "13800000901")
    pump(world.db)
    assert receiver.requests == []
    [d] = _deliveries(world.db)
    [a] = _attempts(world.db, d.id)
    assert (d.status, a.outcome, a.status_code) == ("pending", "refused", None)
    assert a.error is not None and "private or reserved address (127.0.0.1)" in a.error
