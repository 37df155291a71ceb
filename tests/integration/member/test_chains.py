"""Chains: a member is the brand's, not a store's. Any store finds a member by an exact
identity, enrols them (the same member) and records their orders (attributed to the store
where they happen, home store kept); lists, name search and the 360 view stay scoped."""

from __future__ import annotations

from typing import Any

from tests.console import console_client, login, make_users
from tests.itest import assert_problem, counts
from tests.support import api_client, order_payload

MONDAY = "2026-06-08T10:00:00+08:00"


def _home(world: Any, client: Any) -> tuple[int, int]:
    """A member of store A (sh1, region east) with a name, an e-mail, an openid."""
    r = client.post(
        "/v1/members",
        json={
            "phone": "13800000001",
            "email": "li.na@example.com",
            "name": "李娜",
            "home_store": "sh1",
            "identities": [{"kind": "wechat_openid", "value": "oAbC123"}],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["home_store_id"]


def test_store_b_pos_records_an_order_for_a_member_of_store_a(world: Any, client: Any) -> None:
    mid, home = _home(world, client)
    with api_client(world.db, world.keys["sz1"]) as b:  # store B, another region
        # exact identities find the member, brand-wide
        for query in (
            {"phone": "13800000001"},
            {"email": "li.na@example.com"},
            {"identity_type": "wechat_openid", "identity": "oAbC123"},
            {"identity_type": "phone", "identity": "+86 138 0000 0001"},
        ):
            items = b.get("/v1/members", params=query).json()["items"]
            assert [(m["id"], m["home_store_id"]) for m in items] == [(mid, home)], query
        # nobody holds this one: an empty answer, never someone else
        assert b.get("/v1/members", params={"phone": "13900000009"}).json()["items"] == []
        # lists and name search stay scoped to the home store's region
        assert b.get("/v1/members", params={"q": "李娜"}).json()["items"] == []
        assert b.get("/v1/members").json()["items"] == []
        # half an identity filter is refused
        assert_problem(b.get("/v1/members", params={"identity": "oAbC123"}), 422)
        # the 360 view is the home store's: 404 as if absent
        assert_problem(b.get(f"/v1/members/{mid}"), 404, "member_not_found")
        # by id the member is out of scope; by exact identity the order reaches them
        o = order_payload("B-0001", None, store="sz1", paid=10_000, occurred_at=MONDAY)
        assert_problem(b.post("/v1/orders", json={**o, "member_id": mid}), 404, "member_not_found")
        r = b.post(
            "/v1/orders",
            json={**o, "member_identity": {"kind": "phone", "value": "13800000001"}},
        )
        assert r.status_code == 201, r.text
        order = r.json()
        assert (order["member_id"], order["points"]["earned"]) == (mid, 100)
        # joining with the phone again is the same member, home store kept, nothing written
        before = counts(world.db)
        again = b.post("/v1/members", json={"phone": "13800000001", "name": "另一个名字"})
        assert again.status_code == 200, again.text
        assert (again.json()["id"], again.json()["home_store_id"], again.json()["name"]) == (
            mid,
            home,
            "李娜",
        )
        assert counts(world.db) == before
    # the order is the store B's (where it happened); the member is still store A's
    sz1_id = client.get("/v1/org/units").json()
    sz1 = next(u["id"] for u in sz1_id["items"] if u["code"] == "sz1")
    assert order["store_id"] == sz1
    m = client.get(f"/v1/members/{mid}").json()
    assert (m["home_store_id"], m["points"]["pending"]) == (home, 100)
    with api_client(world.db, world.keys["sh1"]) as a:
        # store A does not list store B's orders, but the member's points are theirs
        assert a.get("/v1/orders").json()["items"] == []


def test_receipt_numbers_are_the_stores_own(world: Any, client: Any) -> None:
    _home(world, client)
    o = order_payload("0001", None, store="sh1", paid=10_000, occurred_at=MONDAY)
    with api_client(world.db, world.keys["sh1"]) as a:
        assert a.post("/v1/orders", json=o).status_code == 201
    # store B's "0001" is another order: no conflict, nothing revealed about store A's
    with api_client(world.db, world.keys["sz1"]) as b:
        r = b.post("/v1/orders", json={**o, "store": "sz1", "amount_paid_minor": 10_000})
        assert r.status_code == 201, r.text
        other = {
            **o,
            "store": "sz1",
            "lines": [{"sku": "TEA", "quantity": 1, "unit_price_minor": 10_000}],
        }
        # a replay with different content in the same store is the conflict it always was
        assert b.post("/v1/orders", json={**other, "amount_paid_minor": 9_950}).status_code == 409


def test_store_b_staff_find_by_phone_not_by_name_in_the_console(world: Any, client: Any) -> None:
    make_users(world.db)
    mid, _home_id = _home(world, client)
    with console_client(world.db) as c:
        login(c, world.db, "sz1.staff")
        found = c.get("/admin/members", params={"phone": "13800000001"})
        assert found.status_code == 200
        assert f"/admin/members/{mid}" in found.text
        by_name = c.get("/admin/members", params={"q": "李娜"})
        assert by_name.status_code == 200
        assert f"/admin/members/{mid}" not in by_name.text
        # the 360 view stays with the home store
        assert c.get(f"/admin/members/{mid}").status_code == 404
    # a staff user of the home store finds them by name
    with console_client(world.db) as c:
        login(c, world.db, "sh1.staff")
        assert f"/admin/members/{mid}" in c.get("/admin/members", params={"q": "李娜"}).text
