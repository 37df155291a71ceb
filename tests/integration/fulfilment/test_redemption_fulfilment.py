"""Redemption fulfilment over the API: every redemption has a counter code; the POS
collects it once (by id or by code), a second collection, a cancelled or an expired
voucher is a 409 with a stable code that changes nothing; a collected redemption cannot
be cancelled; out-of-scope codes are 404; concurrent collections: exactly one wins."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from tests.itest import apply_document, assert_problem, counts, demo_document, new_member
from tests.support import api_client

from loyalist.models import Redemption
from loyalist.reward import domain

# clock fixture: 2026-06-10T04:00Z (12:00 Wednesday in Shanghai)
REWARDS = [
    {"code": "mug", "name": "Mug", "points": 300, "collect_within_days": 2},
    {"code": "forever", "name": "No expiry", "points": 10},
]


@pytest.fixture
def shop(world: Any) -> Any:
    doc = demo_document()
    doc["rewards"] = REWARDS
    apply_document(world.db, doc)
    return world


def redeem(client: Any, reward: str = "mug", phone: str = "13900001111") -> dict[str, Any]:
    mid = new_member(client, phone, home_store="sh1")
    r = client.post(f"/v1/members/{mid}/adjustments", json={"points": 1000, "reason": "setup"})
    assert r.status_code in (201, 202), r.text
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": reward})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_redemption_has_a_code_and_an_expiry_from_the_rule(shop: Any, client: Any) -> None:
    body = redeem(client)
    assert body["state"] == "ready" and body["collected_at"] is None
    raw = domain.parse_code(body["code"])
    assert raw is not None and domain.format_code(raw) == body["code"]
    # redeemed 10 June (Shanghai), 2 days: collectable through 12 June, gone at 13 June 00:00
    assert body["expires_at"] == "2026-06-12T16:00:00+00:00"
    other = redeem(client, "forever", phone="13900002222")
    assert other["expires_at"] is None and other["code"] != body["code"]


def test_collected_once_then_409(shop: Any, client: Any, clock: Any) -> None:
    body = redeem(client)
    r = client.post(f"/v1/redemptions/{body['id']}/collect", json={"store": "sh1"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "collected"
    assert r.json()["collected_at"] == "2026-06-10T04:00:00+00:00"
    before = counts(shop.db)
    again = client.post(f"/v1/redemptions/{body['id']}/collect")
    problem = assert_problem(again, 409, "redemption_already_collected")
    assert problem["collected_at"] == "2026-06-10T04:00:00+00:00"
    by_code = client.post("/v1/redemptions/collect", json={"code": body["code"]})
    assert_problem(by_code, 409, "redemption_already_collected")
    assert counts(shop.db) == before
    # a collected redemption can no longer be cancelled (the goods were handed over)
    assert_problem(client.post(f"/v1/redemptions/{body['id']}/cancel"), 409, "redemption_collected")
    assert counts(shop.db) == before
    assert client.get(f"/v1/redemptions/{body['id']}").json()["state"] == "collected"


def test_collect_by_code_ignores_case_dashes_and_lookalikes(shop: Any, client: Any) -> None:
    body = redeem(client)
    typed = body["code"].replace("-", " ").lower()
    r = client.post("/v1/redemptions/collect", json={"code": typed})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == body["id"]


def test_unknown_and_malformed_codes_are_404(shop: Any, client: Any) -> None:
    redeem(client)
    before = counts(shop.db)
    for code in ("AAAA-AAAA-AAAA", "nonsense", "0000"):
        r = client.post("/v1/redemptions/collect", json={"code": code})
        assert_problem(r, 404, "redemption_not_found", field="code")
    assert_problem(client.post("/v1/redemptions/collect", json={}), 422)
    assert counts(shop.db) == before


def test_expired_voucher_cannot_be_collected(shop: Any, client: Any, clock: Any) -> None:
    body = redeem(client)
    clock.advance(timedelta(days=2, hours=11, minutes=59))  # 12 June 23:59 Shanghai
    other = redeem(client, phone="13900003333")
    clock.advance(timedelta(minutes=1))  # 13 June 00:00: the first has expired
    before = counts(shop.db)
    r = client.post(f"/v1/redemptions/{body['id']}/collect")
    assert_problem(r, 409, "redemption_expired")
    assert counts(shop.db) == before
    assert client.get(f"/v1/redemptions/{body['id']}").json()["state"] == "expired"
    assert client.post(f"/v1/redemptions/{other['id']}/collect").status_code == 200


def test_cancelled_voucher_cannot_be_collected(shop: Any, client: Any) -> None:
    body = redeem(client)
    assert client.post(f"/v1/redemptions/{body['id']}/cancel").status_code == 200
    before = counts(shop.db)
    r = client.post("/v1/redemptions/collect", json={"code": body["code"]})
    assert_problem(r, 409, "redemption_cancelled")
    assert counts(shop.db) == before


def test_out_of_scope_and_read_only_keys(shop: Any, client: Any) -> None:
    body = redeem(client)  # home store sh1 (east)
    before = counts(shop.db)
    with api_client(shop.db, shop.keys["sz1"]) as c:
        assert_problem(c.post(f"/v1/redemptions/{body['id']}/collect"), 404)
        assert_problem(c.post("/v1/redemptions/collect", json={"code": body["code"]}), 404)
    with api_client(shop.db, shop.keys["hq-read"]) as c:
        assert_problem(c.post(f"/v1/redemptions/{body['id']}/collect"), 403)
    assert counts(shop.db) == before
    with api_client(shop.db, shop.keys["sh1"]) as c:
        assert c.post("/v1/redemptions/collect", json={"code": body["code"]}).status_code == 200


def test_concurrent_collections_one_wins(shop: Any, client: Any) -> None:
    body = redeem(client)
    results: list[int] = []
    lock = threading.Lock()

    def go() -> None:
        with api_client(shop.db, shop.keys["hq"]) as c:
            status = c.post(f"/v1/redemptions/{body['id']}/collect").status_code
        with lock:
            results.append(status)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 5
    with shop.db.transaction() as s:
        r = s.get(Redemption, body["id"])
        assert r is not None and r.collected_at is not None


def test_idempotent_collect_replays_the_first_answer(shop: Any, client: Any) -> None:
    body = redeem(client)
    h = {"Idempotency-Key": "collect-1"}
    first = client.post(f"/v1/redemptions/{body['id']}/collect", headers=h)
    second = client.post(f"/v1/redemptions/{body['id']}/collect", headers=h)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json() == second.json()
