"""API keys × scopes × every /v1 route: out of scope is 404, read-only writes are 403,
revoked or wrong keys are 401 — and a refused request writes nothing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from tests.itest import assert_problem, counts
from tests.support import api_client, order_payload

from loyalist import http
from loyalist.access import service as access

MONDAY = "2026-06-08T10:00:00+08:00"
# Which side of the organisation each key sees: side "a" is store sh1 (east), "b" is sz1
# (south).
SEES = {
    "hq": {"a", "b"},
    "hq-read": {"a", "b"},
    "east": {"a"},
    "sh1": {"a"},
    "sh1-read": {"a"},
    "south": {"b"},
    "sz1": {"b"},
    "gz1": set(),
}
READ_ONLY = {"hq-read", "sh1-read"}
STORE = {"a": "sh1", "b": "sz1"}
_unique = itertools.count(1)


@dataclass
class Side:
    store: str
    member: int
    order: int
    redemption: int


def make_side(hq: Any, side: str) -> Side:
    store = STORE[side]
    n = next(_unique)
    m = hq.post("/v1/members", json={"phone": f"1380000{n:04d}", "home_store": store})
    assert m.status_code == 201, m.text
    mid = m.json()["id"]
    adj = hq.post(f"/v1/members/{mid}/adjustments", json={"points": 5000, "reason": "setup"})
    assert adj.status_code == 201
    lines = [{"sku": "MUG", "category": "merch", "quantity": 10, "unit_price_minor": 1000}]
    o = hq.post(
        "/v1/orders",
        json=order_payload(
            f"o-{n}", mid, store=store, paid=10_000, lines=lines, occurred_at=MONDAY
        ),
    )
    assert o.status_code == 201, o.text
    r = hq.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize", "store": store})
    assert r.status_code == 201, r.text
    return Side(store, mid, o.json()["id"], r.json()["id"])


@pytest.fixture
def keys(world: Any) -> dict[str, str]:
    with world.db.transaction() as s:
        world.keys["sh1-read"] = access.create_key(
            s, name="sh1-read", scope="sh1", access="read"
        ).secret
    return dict(world.keys)


@pytest.fixture
def clients(world: Any, keys: dict[str, str]) -> Iterator[dict[str, Any]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(api_client(world.db, keys[name])) for name in SEES}


@pytest.fixture
def sides(clients: dict[str, Any]) -> dict[str, Side]:
    return {side: make_side(clients["hq"], side) for side in ("a", "b")}


def reads(s: Side) -> list[tuple[str, str]]:
    """(path, the 404 code when out of scope)"""
    return [
        (f"/v1/members/{s.member}", "member_not_found"),
        (f"/v1/members/{s.member}/ledger", "member_not_found"),
        (f"/v1/members/{s.member}/tier-history", "member_not_found"),
        (f"/v1/members/{s.member}/recommendations", "member_not_found"),  # issue 14
        (f"/v1/orders/{s.order}", "order_not_found"),
        (f"/v1/redemptions/{s.redemption}", "redemption_not_found"),
        (f"/v1/members?store={s.store}", "org_unit_not_found"),
        (f"/v1/orders?store={s.store}", "org_unit_not_found"),
    ]


def writes(s: Side) -> list[tuple[str, str, dict[str, Any], int, str]]:
    """(method, path, body, status when allowed, the 404 code when out of scope)"""
    n = next(_unique)
    return [
        ("PATCH", f"/v1/members/{s.member}", {"name": f"n{n}"}, 200, "member_not_found"),
        (
            "POST",
            f"/v1/members/{s.member}/identities",
            {"kind": "pos_card", "value": f"CARD-{n}"},
            200,
            "member_not_found",
        ),
        ("POST", f"/v1/members/{s.member}/tags", {"add": [f"t{n}"]}, 200, "member_not_found"),
        ("PUT", f"/v1/members/{s.member}/consents/sms", {"granted": True}, 200, "member_not_found"),
        (
            "POST",
            f"/v1/members/{s.member}/adjustments",
            {"points": 10, "reason": "scope test"},
            201,
            "member_not_found",
        ),
        (
            "POST",
            "/v1/members",
            {"phone": f"1390000{n:04d}", "home_store": s.store},
            201,
            "org_unit_not_found",
        ),
        (
            "POST",
            "/v1/orders",
            order_payload(f"w-{n}", s.member, store=s.store, paid=500, occurred_at=MONDAY),
            201,
            "org_unit_not_found",
        ),
        (
            "POST",
            f"/v1/orders/{s.order}/returns",
            {"return_id": f"ret-{n}", "lines": [{"line_no": 1, "quantity": 1}]},
            201,
            "order_not_found",
        ),
        (
            "POST",
            "/v1/redemptions",
            {"member_id": s.member, "reward": "upsize"},
            201,
            "member_not_found",
        ),
        ("POST", f"/v1/redemptions/{s.redemption}/cancel", {}, 200, "redemption_not_found"),
    ]


def test_reads_in_scope_are_200_and_out_of_scope_404(
    world: Any, clients: dict[str, Any], sides: dict[str, Side]
) -> None:
    for (key, c), (side, s) in itertools.product(clients.items(), sides.items()):
        for path, code in reads(s):
            r = c.get(path)
            if side in SEES[key]:
                assert r.status_code == 200, (key, path, r.text)
            else:
                assert_problem(r, 404, code)


def test_lists_hold_only_what_is_in_scope(
    world: Any, clients: dict[str, Any], sides: dict[str, Side]
) -> None:
    for key, c in clients.items():
        _lists_for(key, c, sides)


def _lists_for(key: str, c: Any, sides: dict[str, Side]) -> None:
    visible = sorted(side for side in sides if side in SEES[key])
    members = [m["id"] for m in c.get("/v1/members").json()["items"]]
    assert members == [sides[x].member for x in visible]
    orders = [o["id"] for o in c.get("/v1/orders").json()["items"]]
    assert sorted(orders) == sorted(sides[x].order for x in visible)
    reds = [r["id"] for r in c.get("/v1/redemptions").json()["items"]]
    assert sorted(reds) == sorted(sides[x].redemption for x in visible)
    event_members = {e["member_id"] for e in c.get("/v1/events?limit=200").json()["items"]}
    assert event_members - {None} == {sides[x].member for x in visible}
    for side, s in sides.items():
        r = c.get("/v1/orders", params={"member_id": s.member}).json()["items"]
        assert [o["id"] for o in r] == ([s.order] if side in SEES[key] else [])
    units = {u["code"] for u in c.get("/v1/org/units").json()["items"]}
    expected_units = {
        "hq": {"hq", "east", "south", "sh1", "sh2", "sz1", "gz1"},
        "east": {"east", "sh1", "sh2"},
        "south": {"south", "sz1", "gz1"},
    }
    scope = key.removesuffix("-read")
    assert units == expected_units.get(scope, {scope})
    # the catalogue and the programme are the same for every key
    assert c.get("/v1/rewards").status_code == 200
    assert c.get("/v1/programme").json()["version"] == 1
    assert c.get("/v1/programme/versions").status_code == 200


def test_writes_out_of_scope_are_404_and_write_nothing(
    world: Any, clients: dict[str, Any], sides: dict[str, Side]
) -> None:
    for (key, c), (side, s) in itertools.product(clients.items(), sides.items()):
        if side in SEES[key] or key in READ_ONLY:
            continue
        for method, path, body, _ok, code in writes(s):
            before = counts(world.db)
            r = c.request(method, path, json=body, headers={"Idempotency-Key": f"k-{path}"})
            assert_problem(r, 404, code)
            assert counts(world.db) == before, (key, method, path)


def test_an_order_for_an_in_scope_store_cannot_name_an_out_of_scope_member(
    world: Any, clients: dict[str, Any], sides: dict[str, Side]
) -> None:
    before = counts(world.db)
    body = order_payload("cross", sides["b"].member, store="sh1", paid=500, occurred_at=MONDAY)
    assert_problem(clients["sh1"].post("/v1/orders", json=body), 404, "member_not_found")
    body = {"member_id": sides["b"].member, "reward": "upsize", "store": "sh1"}
    assert_problem(clients["sh1"].post("/v1/redemptions", json=body), 404, "member_not_found")
    body = {"member_id": sides["a"].member, "reward": "upsize", "store": "sz1"}
    assert_problem(clients["sh1"].post("/v1/redemptions", json=body), 404, "org_unit_not_found")
    assert counts(world.db) == before


def test_read_only_keys_get_403_on_every_write(
    world: Any, clients: dict[str, Any], sides: dict[str, Side]
) -> None:
    before = counts(world.db)
    for key, s in itertools.product(sorted(READ_ONLY), sides.values()):
        c = clients[key]
        for method, path, body, _ok, _code in writes(s):
            r = c.request(method, path, json=body, headers={"Idempotency-Key": f"ro-{path}"})
            assert_problem(r, 403, "forbidden")
    assert counts(world.db) == before


def test_writes_in_scope_succeed(world: Any, clients: dict[str, Any]) -> None:
    for key, c in clients.items():
        if key in READ_ONLY:
            continue
        for side in sorted(SEES[key]):
            fresh = make_side(clients["hq"], side)  # each key cancels its own redemption
            for method, path, body, ok, _code in writes(fresh):
                r = c.request(method, path, json=body)
                assert r.status_code == ok, (key, method, path, r.text)


def test_missing_wrong_and_revoked_keys_are_401(
    world: Any, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hq = keys["hq"]
    wrong_secret = hq[:-1] + ("A" if hq[-1] != "A" else "B")
    for bad in (None, "nonsense", "lk_", "lk_zzzzzzzz_secret", wrong_secret):
        with api_client(world.db, bad) as c:
            assert_problem(c.get("/v1/members"), 401, "unauthorized")
            before = counts(world.db)
            assert_problem(c.post("/v1/members", json={"phone": "13800009999"}), 401)
            assert counts(world.db) == before
    with api_client(world.db, None) as c:  # the X-API-Key header works as well
        assert c.get("/v1/members", headers={"X-API-Key": keys["sh1"]}).status_code == 200

    with api_client(world.db, keys["sh1"]) as c:
        assert c.get("/v1/members").status_code == 200  # cached for a few seconds
        prefix = keys["sh1"][: keys["sh1"].index("_", 3)]
        with world.db.transaction() as s:
            access.revoke(s, prefix)
        # A process that has never seen the key refuses it at once ...
        http.forget_cached_keys()
        assert_problem(c.get("/v1/members"), 401, "unauthorized")
        before = counts(world.db)
        assert_problem(c.post("/v1/members", json={"phone": "13800009999"}), 401)
        assert counts(world.db) == before

    with api_client(world.db, keys["sz1"]) as c:
        assert c.get("/v1/members").status_code == 200
        prefix = keys["sz1"][: keys["sz1"].index("_", 3)]
        with world.db.transaction() as s:
            access.revoke(s, prefix)
        # ... and so does one that cached it: no window while the cache entry lives
        assert http._auth_cache, "the key's check is cached"
        assert_problem(c.get("/v1/members"), 401, "unauthorized")


def test_a_cached_key_revoked_is_refused_in_the_request_s_own_transaction(
    world: Any, sides: dict[str, Side]
) -> None:
    """POST /v1/orders, POST /v1/redemptions and GET /v1/members/{id} check a cached key's
    revocation inside their own transaction (issue 11): still no window, no write and no
    replay for a revoked key."""
    side = sides["a"]
    with world.db.transaction() as s:
        till = access.create_key(s, name="till", scope="hq").secret
    prefix = till[: till.index("_", 3)]

    def order(n: int) -> dict[str, Any]:
        return order_payload(f"till-{n}", side.member, store=side.store, occurred_at=MONDAY)

    with api_client(world.db, till) as c:
        first = c.post("/v1/orders", json=order(1), headers={"Idempotency-Key": "till-k1"})
        assert first.status_code == 201, first.text
        again = c.post("/v1/orders", json=order(1), headers={"Idempotency-Key": "till-k1"})
        assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
        assert c.get(f"/v1/members/{side.member}").status_code == 200
        adj = c.post(
            f"/v1/members/{side.member}/adjustments", json={"points": 1000, "reason": "setup"}
        )
        assert adj.status_code == 201, adj.text
        redeem = {"member_id": side.member, "reward": "upsize"}
        r = c.post("/v1/redemptions", json=redeem, headers={"Idempotency-Key": "till-r1"})
        assert r.status_code == 201, r.text
        assert http._auth_cache, "the key is cached: its next requests check in their unit"
        with world.db.transaction() as s:
            access.revoke(s, prefix)
        before = counts(world.db)
        assert_problem(c.get(f"/v1/members/{side.member}"), 401, "unauthorized")
        replay = c.post("/v1/orders", json=order(1), headers={"Idempotency-Key": "till-k1"})
        assert_problem(replay, 401, "unauthorized")  # no replay of the stored answer either
        fresh = c.post("/v1/orders", json=order(2), headers={"Idempotency-Key": "till-k2"})
        assert_problem(fresh, 401, "unauthorized")
        assert_problem(c.post("/v1/orders", json=order(3)), 401, "unauthorized")  # no key
        for k in ("till-r1", "till-r2"):  # a redemption's replay, and a fresh one
            r = c.post("/v1/redemptions", json=redeem, headers={"Idempotency-Key": k})
            assert_problem(r, 401, "unauthorized")
        # an unknown query parameter: the revoked key is still the first fault
        assert_problem(c.get(f"/v1/members/{side.member}?nope=1"), 401, "unauthorized")
        assert counts(world.db) == before
