"""Idempotency-Key on every write: same key and body → the same answer, applied once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.orm import Session
from tests.itest import assert_problem, counts, new_member, rows
from tests.support import api_client, order_payload

from loyalist.idempotency.service import Answer, run_idempotent
from loyalist.kit.actor import SYSTEM
from loyalist.member import service as members

MONDAY = "2026-06-08T10:00:00+08:00"


def writes(mid: int) -> list[tuple[str, str, dict[str, Any]]]:
    """One request for every kind of write, as (method, path, body)."""
    return [
        ("POST", "/v1/members", {"phone": "13900000009", "name": "新会员"}),
        ("PATCH", f"/v1/members/{mid}", {"name": "改名"}),
        ("POST", f"/v1/members/{mid}/identities", {"kind": "pos_card", "value": "CARD-1"}),
        ("POST", f"/v1/members/{mid}/tags", {"add": ["vip"]}),
        ("PUT", f"/v1/members/{mid}/consents/sms", {"granted": True}),
        ("POST", f"/v1/members/{mid}/adjustments", {"points": 500, "reason": "setup gift"}),
        ("POST", "/v1/orders", order_payload("idem-order", mid, paid=5_000, occurred_at=MONDAY)),
        ("POST", "/v1/redemptions", {"member_id": mid, "reward": "upsize"}),
    ]


def test_every_write_replays_status_and_body_once(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    for i, (method, path, body) in enumerate(writes(mid)):
        h = {"Idempotency-Key": f"k-{i}"}
        first = client.request(method, path, json=body, headers=h)
        assert first.is_success, (path, first.text)
        assert "Idempotent-Replayed" not in first.headers
        before = counts(world.db)
        again = client.request(method, path, json=body, headers=h)
        assert (again.status_code, again.json()) == (first.status_code, first.json()), path
        assert again.headers["Idempotent-Replayed"] == "true"
        assert counts(world.db) == before, path  # the replay wrote nothing
    # each write applied once: one adjustment, one order, one redemption
    p = client.get(f"/v1/members/{mid}").json()
    assert p["name"] == "改名"
    assert p["tags"] == ["vip"]
    assert (p["points"]["available"], p["points"]["pending"]) == (0, 50)
    kinds = [
        r["kind"]
        for r in rows(world.db, "SELECT kind FROM ledger_entry WHERE member_id = :m", m=mid)
    ]
    assert sorted(kinds) == ["adjust", "earn", "redeem"]


def test_return_and_cancel_replay(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 1000, "reason": "setup"})
    o = client.post("/v1/orders", json=order_payload("o", mid, paid=5_000, occurred_at=MONDAY))
    red = client.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"})
    for path, body in [
        (f"/v1/orders/{o.json()['id']}/returns", {"return_id": "r1", "full": True}),
        (f"/v1/redemptions/{red.json()['id']}/cancel", {"reason": "oops"}),
    ]:
        h = {"Idempotency-Key": f"k-{path}"}
        first = client.post(path, json=body, headers=h)
        again = client.post(path, json=body, headers=h)
        assert first.is_success, first.text
        assert (again.status_code, again.json()) == (first.status_code, first.json())
        assert again.headers["Idempotent-Replayed"] == "true"
    assert client.get(f"/v1/members/{mid}").json()["points"]["available"] == 1000


def test_same_key_with_another_body_or_path_is_refused(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    h = {"Idempotency-Key": "reused"}
    ok = client.post(
        f"/v1/members/{mid}/adjustments", json={"points": 5, "reason": "first"}, headers=h
    )
    assert ok.status_code == 201
    before = counts(world.db)
    for method, path, body in [
        ("POST", f"/v1/members/{mid}/adjustments", {"points": 5, "reason": "second"}),
        ("POST", "/v1/orders", order_payload("x", mid, paid=100, occurred_at=MONDAY)),
        ("PATCH", f"/v1/members/{mid}", {"name": "first"}),
    ]:
        r = client.request(method, path, json=body, headers=h)
        b = assert_problem(r, 422, "idempotency_key_reused", "Idempotency-Key")
        assert "Idempotent-Replayed" not in r.headers
        assert b["errors"][0]["code"] == "reused"
    assert counts(world.db) == before


@pytest.mark.parametrize("key", ["x" * 256, "", "tab\there"])
def test_invalid_keys_are_422_and_write_nothing(world: Any, client: Any, key: str) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db)
    r = client.post(
        f"/v1/members/{mid}/adjustments",
        json={"points": 5, "reason": "gift"},
        headers={"Idempotency-Key": key},
    )
    assert_problem(r, 422, "validation_failed", "Idempotency-Key")
    assert counts(world.db) == before


def test_longest_key_is_accepted(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    h = {"Idempotency-Key": "k" * 255}
    body = {"points": 5, "reason": "gift"}
    first = client.post(f"/v1/members/{mid}/adjustments", json=body, headers=h)
    again = client.post(f"/v1/members/{mid}/adjustments", json=body, headers=h)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()


def test_keys_belong_to_the_api_key_that_sent_them(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    h = {"Idempotency-Key": "shared-name"}
    body = {"points": 5, "reason": "gift"}
    a = client.post(f"/v1/members/{mid}/adjustments", json=body, headers=h)
    with api_client(world.db, world.keys["sh1"]) as sh1:
        b = sh1.post(f"/v1/members/{mid}/adjustments", json=body, headers=h)
    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]
    assert client.get(f"/v1/members/{mid}").json()["points"]["available"] == 10


def test_a_failed_write_stores_no_answer_and_can_be_retried(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    h = {"Idempotency-Key": "redeem-when-ready"}
    body = {"member_id": mid, "reward": "upsize"}
    before = counts(world.db)
    assert_problem(client.post("/v1/redemptions", json=body, headers=h), 409, "insufficient_points")
    assert counts(world.db) == before
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 500, "reason": "topped up"})
    r = client.post("/v1/redemptions", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    again = client.post("/v1/redemptions", json=body, headers=h)
    assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
    assert client.get(f"/v1/members/{mid}").json()["points"]["available"] == 0


def test_concurrent_requests_with_one_key_apply_once(world: Any, client: Any) -> None:
    """Eight threads, one key, a unit of work slow enough that they all overlap."""
    mid = new_member(client, "13800000001")
    db = world.db
    started = threading.Barrier(8)
    ran = []

    def work(s: Session) -> Answer:
        ran.append(1)
        time.sleep(0.2)  # hold the key while the others arrive
        e = members.adjust_points(s, SYSTEM, mid, 100, "concurrent gift")
        return Answer(201, {"entry_id": e.id})

    def call() -> Answer:
        started.wait(timeout=30)
        return run_idempotent(
            db,
            principal="key:test",
            key="one-key",
            method="POST",
            path=f"/v1/members/{mid}/adjustments",
            body=b'{"points": 100}',
            work=work,
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _i: call(), range(8)))
    assert {(a.status, repr(a.body)) for a in answers} == {(201, repr(answers[0].body))}
    assert sum(1 for a in answers if not a.replayed) == 1
    assert len(ran) == 1  # the others waited, then replayed without running the work
    assert client.get(f"/v1/members/{mid}").json()["points"]["available"] == 100
    (n,) = rows(db, "SELECT COUNT(*) AS n FROM idempotency_record WHERE key = 'one-key'")
    assert n["n"] == 1
