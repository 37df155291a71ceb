"""Domain events: every state change writes its event in the same transaction, and
GET /v1/events pages through them with a cursor."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from tests.itest import assert_problem, counts, new_member, rows
from tests.support import api_client, order_payload

from loyalist.jobs import service as jobs
from loyalist.kit.actor import SYSTEM
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate

MONDAY = "2026-06-08T10:00:00+08:00"


class Stream:
    """A consumer of GET /v1/events that keeps its cursor, like a data platform would."""

    def __init__(self, client: Any, limit: int = 3) -> None:
        self.client = client
        self.cursor: str | None = None
        self.limit = limit
        self.seen: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """Everything new since the last poll, fetched in pages of ``limit``."""
        new: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": self.limit}
            if self.cursor:
                params["cursor"] = self.cursor
            r = self.client.get("/v1/events", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            new += page["items"]
            self.cursor = page["next_cursor"]
            if len(page["items"]) < self.limit:
                break
        self.seen += new
        return new

    def types(self) -> list[str]:
        return [e["type"] for e in self.poll()]


def test_every_state_change_writes_its_event(world: Any, client: Any, clock: Any) -> None:
    db = world.db
    stream = Stream(client)
    assert stream.types() == ["programme.published"]  # the world's programme

    mid = new_member(client, "13800000001")
    assert stream.types() == ["member.created"]
    client.patch(f"/v1/members/{mid}", json={"name": "王小明"})
    assert stream.types() == ["member.updated"]

    client.post(f"/v1/members/{mid}/adjustments", json={"points": 1000, "reason": "welcome"})
    assert stream.types() == ["points.earned", "points.adjusted"]
    client.post(f"/v1/members/{mid}/adjustments", json={"points": -10, "reason": "fix"})
    assert stream.types() == ["points.adjusted"]

    big = client.post(
        "/v1/orders", json=order_payload("big", mid, paid=300_000, occurred_at=MONDAY)
    )
    assert big.json()["points"]["earned"] == 3000
    assert stream.types() == ["points.earned", "tier.changed", "order.recorded"]

    red = client.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"}).json()
    assert stream.types() == ["points.redeemed", "redemption.created"]
    client.post(f"/v1/redemptions/{red['id']}/cancel")
    assert stream.types() == ["points.restored", "redemption.cancelled"]

    client.post(f"/v1/orders/{big.json()['id']}/returns", json={"return_id": "r", "full": True})
    assert stream.types() == ["points.clawed_back", "order.returned"]

    small = order_payload("small", mid, paid=10_000, occurred_at=MONDAY)
    client.post("/v1/orders", json=small)
    assert stream.types() == ["points.earned", "order.recorded"]
    # an order with no member earns nothing and says so
    client.post("/v1/orders", json=order_payload("anon", None, paid=10_000, occurred_at=MONDAY))
    anon = stream.poll()
    assert [e["type"] for e in anon] == ["order.recorded"]
    assert (anon[0]["member_id"], anon[0]["data"]["points_earned"]) == (None, 0)

    clock.freeze(datetime(2026, 6, 16, 4, 0, tzinfo=UTC))
    jobs.activate_pending(db)
    assert stream.types() == ["points.activated"]
    jobs.activate_pending(db)  # nothing left: no event
    assert stream.types() == []

    # the adjustment's lot (990 left) expires at the end of 2027 in Shanghai
    clock.freeze(datetime(2027, 12, 2, 4, 0, tzinfo=UTC))
    jobs.remind_expiring(db)
    expiring = stream.poll()
    assert [e["type"] for e in expiring] == ["points.expiring"]
    assert expiring[0]["data"] == {
        "member_id": mid,
        # the adjustment's 990 and the small order's 100 share the expiry (the order is
        # dated Monday, before the gold upgrade: it earns at the base tier in force then)
        "points": 1090,
        "expires_at": "2027-12-31T16:00:00+00:00",
        "days_before": 30,
    }
    clock.freeze(datetime(2028, 1, 1, 4, 0, tzinfo=UTC))
    jobs.expire_points(db)
    assert stream.types() == ["points.expired", "points.expired"]

    # every event carries its member, a stable UUID, a sequence and the schema version
    for e in stream.seen:
        assert uuid.UUID(e["id"]).version == 4
        assert e["schema_version"] == 1
        assert datetime.fromisoformat(e["occurred_at"]).tzinfo is not None
        if e["type"] not in ("programme.published", "order.recorded"):
            assert e["member_id"] == mid
            assert e["data"]["member_id"] == mid
    seqs = [e["sequence"] for e in stream.seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({e["id"] for e in stream.seen}) == len(stream.seen)
    # reading again from the start gives the same events with the same ids
    again = Stream(client, limit=200)
    again.poll()
    assert again.seen == stream.seen


def test_event_payloads_describe_the_change(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    o = client.post("/v1/orders", json=order_payload("o1", mid, paid=12_345, occurred_at=MONDAY))
    assert o.status_code == 201
    evs = client.get("/v1/events", params={"member_id": mid}).json()["items"]
    by_type = {e["type"]: e["data"] for e in evs}
    assert by_type["member.created"] == {
        "member_id": mid,
        "member_no": f"M{mid:09d}",
        "tier": "base",
        "by": by_type["member.created"]["by"],
    }
    earned = by_type["points.earned"]
    assert {k: earned[k] for k in ("points", "kind", "status", "available", "pending")} == {
        "points": 123,
        "kind": "earn",
        "status": "pending",
        "available": 0,
        "pending": 123,
    }
    assert earned["available_at"] == "2026-06-15T16:00:00+00:00"
    assert earned["source_type"] == "order"
    assert by_type["order.recorded"] == {
        "order_id": o.json()["id"],
        "external_id": "o1",
        "member_id": mid,
        "store": "sh1",
        "amount_paid_minor": 12_345,
        "currency": "CNY",
        "points_earned": 123,
        "points_paid": 0,
    }


def test_filters_by_type_and_member(world: Any, client: Any) -> None:
    a = new_member(client, "13800000001")
    b = new_member(client, "13800000002")
    for mid in (a, b):
        client.post(f"/v1/members/{mid}/adjustments", json={"points": 5, "reason": "gift"})
    r = client.get("/v1/events", params={"type": "points.adjusted"}).json()["items"]
    assert [(e["type"], e["member_id"]) for e in r] == [
        ("points.adjusted", a),
        ("points.adjusted", b),
    ]
    r = client.get(
        "/v1/events", params=[("type", "member.created"), ("type", "points.earned")]
    ).json()["items"]
    assert [(e["type"], e["member_id"]) for e in r] == [
        ("member.created", a),
        ("member.created", b),
        ("points.earned", a),
        ("points.earned", b),
    ]
    r = client.get("/v1/events", params={"member_id": b}).json()["items"]
    assert [e["type"] for e in r] == ["member.created", "points.earned", "points.adjusted"]


def test_cursor_at_the_end_is_kept_and_bad_cursors_are_422(world: Any, client: Any) -> None:
    page = client.get("/v1/events").json()
    end = page["next_cursor"]
    assert end is not None
    empty = client.get("/v1/events", params={"cursor": end}).json()
    assert empty == {"items": [], "next_cursor": end}
    mid = new_member(client, "13800000001")
    after = client.get("/v1/events", params={"cursor": end}).json()
    assert [(e["type"], e["member_id"]) for e in after["items"]] == [("member.created", mid)]
    for bad in ("garbage", "eyJhIjotMX0", "eyJiIjoxfQ"):  # not base64 JSON, a=-1, no "a"
        assert_problem(client.get("/v1/events", params={"cursor": bad}), 422, field="cursor")
    for limit in (0, 201, -1):
        assert_problem(client.get("/v1/events", params={"limit": limit}), 422, field="limit")
    assert_problem(client.get("/v1/events", params={"limit": "many"}), 422, field="limit")


def test_scoped_keys_see_their_events_and_programme_wide_ones(world: Any, client: Any) -> None:
    sh1 = new_member(client, "13800000001", home_store="sh1")
    sz1 = new_member(client, "13800000002", home_store="sz1")
    with api_client(world.db, world.keys["sh1"]) as k:
        r = k.get("/v1/events").json()["items"]
        assert [(e["type"], e["member_id"]) for e in r] == [
            ("programme.published", None),
            ("member.created", sh1),
        ]
        assert k.get("/v1/events", params={"member_id": sz1}).json()["items"] == []
    with api_client(world.db, world.keys["south"]) as k:
        r = k.get("/v1/events").json()["items"]
        assert [e["member_id"] for e in r] == [None, sz1]
    r = client.get("/v1/events").json()["items"]  # the HQ key sees everything
    assert [(e["type"], e["member_id"]) for e in r] == [
        ("programme.published", None),
        ("member.created", sh1),
        ("member.created", sz1),
    ]


def test_a_refused_write_leaves_no_event(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db)
    assert_problem(
        client.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"}),
        409,
        "insufficient_points",
    )
    paid = order_payload("pp", mid, paid=100, points_paid=50, occurred_at=MONDAY)
    assert_problem(client.post("/v1/orders", json=paid), 409, "insufficient_points")
    assert counts(world.db) == before


def test_events_roll_back_with_the_transaction_that_wrote_them(world: Any, client: Any) -> None:
    """A unit of work that fails after its events were written leaves none behind."""
    db = world.db
    before = counts(db)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.transaction() as s:
        joined = members.create(s, SYSTEM, MemberCreate(phone="13800000009"))
        orders.record(
            s,
            SYSTEM,
            OrderCreate.model_validate(
                order_payload("doomed", joined.member.id, paid=10_000, occurred_at=MONDAY)
            ),
        )
        s.flush()
        types = [r["type"] for r in _pending_events(s)]
        assert types == ["member.created", "points.earned", "order.recorded"]
        raise Boom
    assert counts(db) == before
    assert rows(db, "SELECT type FROM outbox_event WHERE type <> 'programme.published'") == []


def _pending_events(s: Session) -> list[dict[str, Any]]:
    q = text("SELECT type FROM outbox_event WHERE type <> 'programme.published' ORDER BY id")
    return [dict(r._mapping) for r in s.execute(q)]


def test_a_reader_never_skips_an_event_committed_after_a_later_one(world: Any, client: Any) -> None:
    """Event ids are handed out when an event is written, not when it commits: a slow
    transaction can commit its event after a quicker one with a higher id. A consumer that
    keeps its cursor must still get both."""
    db = world.db
    a = new_member(client, "13800000001")
    b = new_member(client, "13800000002")
    stream = Stream(client, limit=50)
    stream.poll()
    slow_written = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            with db.transaction() as s:
                members.adjust_points(s, SYSTEM, a, 10, "slow")
                s.flush()  # its event rows (and their ids) exist, uncommitted
                slow_written.set()
                assert release.wait(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    def quick() -> None:
        try:  # PostgreSQL: commits at once; SQLite: waits for the slow writer's lock
            with db.transaction() as s:
                members.adjust_points(s, SYSTEM, b, 20, "quick")
        except BaseException as exc:
            errors.append(exc)

    early: list[dict[str, Any]] = []
    t_slow = threading.Thread(target=slow)
    t_slow.start()
    assert slow_written.wait(timeout=30)
    t_quick = threading.Thread(target=quick)
    t_quick.start()
    t_quick.join(timeout=2)
    reader = threading.Thread(target=lambda: early.extend(stream.poll()))
    reader.start()
    reader.join(timeout=2)  # SQLite: a reader waits for the writer too
    release.set()
    for t in (t_slow, t_quick, reader):
        t.join(timeout=60)
    assert errors == []
    late = stream.poll()
    got = sorted((e["member_id"], e["type"]) for e in early + late)
    assert got == [
        (a, "points.adjusted"),
        (a, "points.earned"),
        (b, "points.adjusted"),
        (b, "points.earned"),
    ], (early, late)
    seqs = [e["sequence"] for e in stream.seen]
    assert seqs == sorted(seqs)
