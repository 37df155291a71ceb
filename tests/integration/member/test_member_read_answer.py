"""GET /v1/members/{id} answers from columns in two statements (issue 11: six in session 8,
two since branch readlean): the same bytes as the entity path (member.service.profile →
profile_out) for a member with every field, tags, consents, identities, pending and
expiring points; for a member drawing on another's account (the pool's balance); for a
merged member (their survivor); 404 out of scope; a programme version published since the
last read; and 401 for a revoked key whatever the member."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.itest import apply_document, assert_problem, demo_document, new_member
from tests.support import api_client, order_payload

from loyalist import http
from loyalist.access import service as access
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.member import service as members

EVERYONE = Actor(name="test", scope_path="/")


def entity_answer(db: Database, member_id: int) -> str:
    """What the member read answered before: the ORM entity path, as the endpoint sends it."""
    with db.transaction() as s:
        return members.profile_out(members.profile(s, EVERYONE, member_id)).model_dump_json(
            by_alias=True
        )


def orders_a_year_apart(client: Any, mid: int) -> None:
    """An order of 300.00 on 2025-06-02 and one of 200.00 on 2026-12-10 (Shanghai)."""
    old = order_payload("old", mid, paid=30_000, occurred_at="2025-06-02T10:00:00+08:00")
    assert client.post("/v1/orders", json=old).status_code == 201
    new = order_payload("new", mid, paid=20_000, occurred_at="2026-12-10T11:00:00+08:00")
    assert client.post("/v1/orders", json=new).status_code == 201


def test_a_full_member_is_answered_exactly_as_before(world: Any, client: Any, clock: Any) -> None:
    clock.freeze(datetime(2026, 12, 10, 4, 0, tzinfo=UTC))
    r = client.post(
        "/v1/members",
        json={
            "phone": "138 1234 5678",
            "email": "Li.Lei@Example.COM",
            "name": "李雷",
            "birthday": "1990-02-03",
            "gender": "male",
            "city": "上海",
            "home_store": "sh1",
            "join_channel": "pos",
            "tags": ["vip", "coffee", "咖啡", "Early"],
            "consents": {"sms": True, "email": False},
        },
    )
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    # 300 available points expiring at the end of 2026 (Shanghai), 200 pending
    orders_a_year_apart(client, mid)
    r = client.get(f"/v1/members/{mid}")
    assert r.status_code == 200, r.text
    assert r.text == entity_answer(world.db, mid)
    m = r.json()
    assert {k: m[k] for k in ("phone", "email", "name", "birthday", "home_store_id")} == {
        "phone": "+8613812345678",
        "email": "Li.Lei@example.com",
        "name": "李雷",
        "birthday": "1990-02-03",
        "home_store_id": m["home_store_id"],
    }
    assert m["tags"] == ["Early", "coffee", "vip", "咖啡"]
    assert m["consents"] == {"email": False, "sms": True}
    assert m["identities"] == [
        {"kind": "email", "value": "Li.Lei@example.com"},
        {"kind": "phone", "value": "+8613812345678"},
    ]
    assert m["points"] == {
        "available": 300,
        "pending": 200,
        "debt": 0,
        "lifetime_earned": 500,
        "expiring_30d": 300,
        "expiring": [{"expires_at": "2026-12-31T16:00:00+00:00", "points": 300}],
    }
    assert m["tier"] == {
        "code": "base",
        "name": "普通会员",
        "since": "2026-12-10T04:00:00+00:00",
        "expires_at": None,
        "metric": "spend",
        "value": 20_000,  # the 2025 order is outside the 12-month window
        "next": {"code": "silver", "name": "银卡会员", "missing": 80_000},
        "keep": {"threshold": 0, "missing": 0},
    }


def test_a_member_on_a_shared_account_shows_the_pools_balance(world: Any, client: Any) -> None:
    owner = new_member(client, "13800000001")
    joiner = new_member(client, "13800000002")
    r = client.post(f"/v1/members/{owner}/adjustments", json={"points": 700, "reason": "setup"})
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        pool = ledger.account_id_of(s, owner)
        ledger.attach(s, pool, joiner, can_spend=True, actor="test")
    r = client.get(f"/v1/members/{joiner}")
    assert r.status_code == 200, r.text
    assert r.json()["points"]["available"] == 700
    assert r.text == entity_answer(world.db, joiner)


def test_a_merged_member_answers_as_the_survivor(world: Any, client: Any) -> None:
    a = new_member(client, "13800000001", name="张三")
    b = new_member(client, "13800000002")
    r = client.post("/v1/merges", json={"survivor_id": a, "merged_id": b})
    assert r.status_code in (200, 201), r.text
    r = client.get(f"/v1/members/{b}")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == a
    assert r.text == entity_answer(world.db, a)


def test_out_of_scope_and_missing_members_are_404(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    with api_client(world.db, world.keys["south"]) as south:
        assert_problem(south.get(f"/v1/members/{mid}"), 404, "member_not_found")
    assert_problem(client.get(f"/v1/members/{mid + 100}"), 404, "member_not_found")


def test_a_new_programme_version_is_read_with_the_member(
    world: Any, client: Any, clock: Any
) -> None:
    """The tier spend is read with the member over the window of the programme this process
    saw last (branch readlean); a version published since, with another window, is read
    and answered as the entity path answers it."""
    clock.freeze(datetime(2026, 12, 10, 4, 0, tzinfo=UTC))
    mid = new_member(client, "13800000001")
    orders_a_year_apart(client, mid)
    r = client.get(f"/v1/members/{mid}")
    assert r.status_code == 200, r.text
    assert r.json()["tier"]["value"] == 20_000  # 12 months: the 2025 order left out
    doc = demo_document()
    doc["tiers"]["window_months"] = 24
    apply_document(world.db, doc)
    r = client.get(f"/v1/members/{mid}")
    assert r.status_code == 200, r.text
    assert r.json()["tier"]["value"] == 50_000  # 24 months: both orders
    assert r.text == entity_answer(world.db, mid)
    r = client.get(f"/v1/members/{mid}")  # the new version guessed now
    assert (r.status_code, r.text) == (200, entity_answer(world.db, mid))


def test_a_revoked_cached_key_is_401_for_any_member(world: Any, client: Any) -> None:
    """The key check folded into the member read's first statement (branch readlean) comes
    before every other answer: a member in scope, one out of it, a missing one and a merged
    one all answer 401 once the cached key is revoked."""
    outside = new_member(client, "13800000001", home_store="sh1")
    inside = new_member(client, "13800000002", home_store="sz1")
    merged = new_member(client, "13800000003", home_store="sz1")
    r = client.post("/v1/merges", json={"survivor_id": inside, "merged_id": merged})
    assert r.status_code in (200, 201), r.text
    missing = merged + 100
    with world.db.transaction() as s:
        till = access.create_key(s, name="till-south", scope="south").secret
    prefix = till[: till.index("_", 3)]
    with api_client(world.db, till) as south:
        assert south.get(f"/v1/members/{inside}").status_code == 200
        assert south.get(f"/v1/members/{merged}").json()["id"] == inside
        assert_problem(south.get(f"/v1/members/{outside}"), 404, "member_not_found")
        assert_problem(south.get(f"/v1/members/{missing}"), 404, "member_not_found")
        with world.db.transaction() as s:
            access.revoke(s, prefix)
        assert http._auth_cache, "the key is cached: the read checks it in its own statement"
        for mid in (inside, merged, outside, missing):
            assert_problem(south.get(f"/v1/members/{mid}"), 401, "unauthorized")
