"""API keys × scopes × every /v1 route: out of scope is 404, read-only writes are 403,
revoked or wrong keys are 401 — and a refused request writes nothing."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import event, text
from tests.itest import ALL_TABLES, assert_problem, counts
from tests.support import api_client, order_payload

from loyalist import api, http
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


def v1_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every /v1 operation, descending into included routers."""
    out: list[tuple[str, str]] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out += v1_routes(inner.routes, prefix + route.include_context.prefix)
            continue
        assert isinstance(route, APIRoute), route  # nothing is skipped unseen
        out += [(m, prefix + route.path) for m in sorted(route.methods - {"HEAD"})]
    return out


def contents(db: Any) -> dict[str, list[str]]:
    """Every row of every table: compare before and after to prove nothing was inserted,
    updated or deleted."""
    with db.engine.connect() as conn:
        return {
            t: sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{t}"')))
            for t in ALL_TABLES
        }


def test_a_cached_key_revoked_is_refused_by_every_route_and_nothing_is_written(
    world: Any, sides: dict[str, Side], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every /v1 operation, for a key this process has cached (its revocation read inside the
    request's own transaction, or on its own when the request makes none): 401, nothing
    written, no idempotent answer replayed. Writes get a valid body where one is listed
    (``writes``), so what the check prevents is a real write; the others an empty one."""
    monkeypatch.setattr(http, "_AUTH_TTL_S", 3600.0)  # cached for the whole test
    side = sides["a"]
    with world.db.transaction() as s:
        till = access.create_key(s, name="till", scope="hq").secret
    prefix = till[: till.index("_", 3)]
    order = order_payload("till-1", side.member, store=side.store, occurred_at=MONDAY)
    bodies = {(m, p): b for m, p, b, _ok, _code in writes(side)}
    ids: dict[str, Any] = {"member_id": side.member, "order_id": side.order}
    ids |= {"redemption_id": side.redemption, "channel": "sms"}

    def url(path: str) -> str:
        return re.sub(r"{(\w+)(:\w+)?}", lambda m: str(ids.get(m.group(1), 1)), path)

    routes = v1_routes(api.router.routes)
    assert {("POST", "/v1/orders"), ("GET", "/v1/members/{member_id}")} <= set(routes)
    with api_client(world.db, till) as c:
        first = c.post("/v1/orders", json=order, headers={"Idempotency-Key": "till-k1"})
        assert first.status_code == 201, first.text
        again = c.post("/v1/orders", json=order, headers={"Idempotency-Key": "till-k1"})
        assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
        assert http._cached(till) is not None, "the key is cached: its check is owed"
        with world.db.transaction() as s:
            access.revoke(s, prefix)
        before = contents(world.db)
        replay = c.post("/v1/orders", json=order, headers={"Idempotency-Key": "till-k1"})
        assert_problem(replay, 401, "unauthorized")  # no replay of the stored answer either
        for n, (method, path) in enumerate(routes):
            target = url(path)
            body = bodies.get((method, target), {}) if method in ("POST", "PUT", "PATCH") else None
            r = c.request(method, target, json=body, headers={"Idempotency-Key": f"rv-{n}"})
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert_problem(r, 401, "unauthorized")
        # without an Idempotency-Key, and with an unknown query parameter
        assert_problem(c.post("/v1/orders", json=order), 401, "unauthorized")
        assert_problem(c.get(f"/v1/members/{side.member}?nope=1"), 401, "unauthorized")
        assert http._cached(till) is not None, "every refusal above came from the owed check"
    assert contents(world.db) == before
    with world.db.transaction() as s:
        viewer = access.create_key(s, name="viewer", scope="hq", access="read").secret
    with api_client(world.db, viewer) as c:
        assert c.get(f"/v1/members/{side.member}").status_code == 200  # cached
        with world.db.transaction() as s:
            access.revoke(s, viewer[: viewer.index("_", 3)])
        before = contents(world.db)
        # a read-only key's write is a 403, but once revoked it is a 401 first
        assert_problem(c.post("/v1/orders", json=order), 401, "unauthorized")
    assert contents(world.db) == before


def test_a_cached_key_costs_no_transaction_of_its_own(world: Any, sides: dict[str, Side]) -> None:
    """A request with a cached key reads the key's revocation once, inside a transaction of
    the request's own work (a read, a write); only a route that needs no database makes it
    in a transaction of its own (its only one)."""
    side = sides["a"]
    with world.db.transaction() as s:
        key = access.create_key(s, name="till", scope="hq").secret
    tx: list[list[str]] = []  # the statements of each transaction begun

    def begin(_conn: Any) -> None:
        tx.append([])

    def statement(_conn: Any, _cur: Any, sql: str, *_rest: Any) -> None:
        if tx and not sql.startswith(("BEGIN", "COMMIT", "ROLLBACK")):  # SQLite's own BEGIN
            tx[-1].append(sql)

    with api_client(world.db, key) as c:
        assert c.get("/v1/rewards").status_code == 200  # the key is cached from here on
        requests: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/v1/members/{side.member}", None),
            ("GET", "/v1/rewards", None),
            ("POST", "/v1/orders", order_payload("tx-1", side.member, occurred_at=MONDAY)),
            ("PATCH", f"/v1/members/{side.member}", {"name": "tx"}),
            ("GET", "/v1/events/schemas", None),
        ]
        for method, path, body in requests:
            tx.clear()
            event.listen(world.db.engine, "begin", begin)
            event.listen(world.db.engine, "before_cursor_execute", statement)
            try:
                r = c.request(method, path, json=body)
            finally:
                event.remove(world.db.engine, "begin", begin)
                event.remove(world.db.engine, "before_cursor_execute", statement)
            assert r.status_code in (200, 201), (path, r.text)
            checks = [i for i, t in enumerate(tx) for sql in t if "FROM api_key" in sql]
            assert len(checks) == 1, (method, path, tx)
            if path == "/v1/events/schemas":
                assert len(tx) == 1 and len(tx[0]) == 1, tx  # no database work: the check only
            else:
                assert len(tx[checks[0]]) > 1, (method, path, tx)  # the work's transaction
