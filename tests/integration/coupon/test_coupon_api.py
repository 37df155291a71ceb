"""Coupons through the API: templates, issuance, validate → redeem with an order → return
→ use restored (counters exact), refusals that write nothing, guessing throttled, batches
(inline, background job with progress, import), the issue_coupon action."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tests.itest import assert_problem, counts, new_member, rows
from tests.support import api_client, order_payload

from loyalist.actions import registry as actions
from loyalist.coupon import service as coupons
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.models import CouponCode

# clock fixture: 2026-06-10T04:00Z (12:00 Wednesday in Shanghai: member day, double points)

TEN_OFF = {
    "code": "ten-off",
    "name": "满50减10",
    "name_en": "¥10 off ¥50",
    "kind": "amount_off",
    "amount_minor": 1000,
    "min_spend_minor": 5000,
    "limit_per_member": 1,
    "valid_days": 7,
}


def template(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/coupon-templates", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def issue(client: Any, mid: int, tpl: str, ref: str | None = None) -> str:
    body: dict[str, Any] = {"template": tpl}
    if ref:
        body["reference"] = ref
    r = client.post(f"/v1/members/{mid}/coupons", json=body)
    assert r.status_code == 201, r.text
    code: str = r.json()["code"]
    return code


def basket(mid: int | None, codes: list[str], paid: int = 8000) -> dict[str, Any]:
    return {
        "codes": codes,
        "member_id": mid,
        "store": "sh1",
        "lines": [
            {"sku": "LATTE", "category": "coffee", "quantity": 2, "unit_price_minor": paid // 2}
        ],
    }


def tpl_row(db: Database, code: str) -> dict[str, Any]:
    return rows(
        db, "SELECT uses, spent_minor, issued FROM coupon_template WHERE code = :c", c=code
    )[0]


def test_templates_are_created_once_and_only_at_headquarters(client: Any, world: Any) -> None:
    assert template(client, TEN_OFF)["rules"]["amount_minor"] == 1000
    again = client.post("/v1/coupon-templates", json=TEN_OFF)
    assert again.status_code == 200
    assert_problem(
        client.post("/v1/coupon-templates", json={**TEN_OFF, "amount_minor": 2000}),
        409,
        "coupon_template_exists",
    )
    with api_client(world.db, world.keys["sh1"]) as store:
        before = counts(world.db)
        assert_problem(store.post("/v1/coupon-templates", json={**TEN_OFF, "code": "x"}), 403)
        assert counts(world.db) == before
    bad = client.post(
        "/v1/coupon-templates",
        json={**TEN_OFF, "code": "bad", "when": {"gte": {"member.tier": "diamond"}}},
    )
    assert_problem(bad, 422, "coupon_template_invalid", "when.gte")
    assert_problem(
        client.post("/v1/coupon-templates", json={**TEN_OFF, "code": "p", "kind": "percent_off"}),
        422,
    )


def test_validate_redeem_return_restores_the_use(client: Any, world: Any) -> None:
    template(client, TEN_OFF)
    mid = new_member(client, "13800000001")
    code = issue(client, mid, "ten-off")
    listed = client.get(f"/v1/members/{mid}/coupons").json()["items"]
    assert [(c["code"], c["status"], c["uses"]) for c in listed] == [(code, "available", 0)]
    # issued 10 June with 7 days: valid through 16 June, Shanghai time
    assert listed[0]["expires_at"] == "2026-06-16T16:00:00+00:00"

    v = client.post("/v1/coupons/validate", json=basket(mid, [code.lower()]))
    assert v.status_code == 200, v.text
    body = v.json()
    assert body["valid"] is True
    assert body["discount_minor"] == 1000
    assert body["amount_due_minor"] == 7000
    assert body["codes"] == [
        {
            "code": code,
            "template": "ten-off",
            "valid": True,
            "reason": None,
            "discount_minor": 1000,
            "lines": [{"line_no": 1, "discount_minor": 1000}],
        }
    ]
    assert tpl_row(world.db, "ten-off") == {"uses": 0, "spent_minor": 0, "issued": 1}

    # An order whose coupon_minor leaves out the discount is refused and writes nothing.
    before = counts(world.db)
    short = {**order_payload("o-1", mid, paid=8000), "coupons": [code]}
    assert_problem(client.post("/v1/orders", json=short), 422, "coupon_invalid", "coupon_minor")
    assert counts(world.db) == before

    order = {
        **order_payload("o-1", mid, paid=7000),
        "lines": [{"sku": "LATTE", "category": "coffee", "quantity": 2, "unit_price_minor": 4000}],
        "coupon_minor": 1000,
        "coupons": [code],
    }
    r = client.post("/v1/orders", json=order)
    assert r.status_code == 201, r.text
    o = r.json()
    assert (o["amount_paid_minor"], o["coupon_minor"]) == (7000, 1000)
    assert o["points"]["earned"] == 140  # ¥70 paid, member day ×2: the discount earns nothing
    assert tpl_row(world.db, "ten-off") == {"uses": 1, "spent_minor": 1000, "issued": 1}
    # The same order again (a retry) is found, nothing redeemed twice.
    assert client.post("/v1/orders", json=order).status_code == 200
    assert tpl_row(world.db, "ten-off") == {"uses": 1, "spent_minor": 1000, "issued": 1}
    assert client.get(f"/v1/members/{mid}/coupons").json()["items"][0]["status"] == "used"
    # Used: another order with it is a conflict with a stable code, and writes nothing.
    before = counts(world.db)
    again = {**order, "external_id": "o-2"}
    assert_problem(client.post("/v1/orders", json=again), 409, "coupon_used", "coupons.0")
    assert counts(world.db) == before
    v2 = client.post("/v1/coupons/validate", json=basket(mid, [code])).json()
    assert (v2["valid"], v2["codes"][0]["reason"]) == (False, "used_up")

    # A partial return keeps the coupon used; the full return gives it back.
    ret = client.post(
        f"/v1/orders/{o['id']}/returns",
        json={"return_id": "r-1", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert ret.status_code == 201, ret.text
    assert tpl_row(world.db, "ten-off")["uses"] == 1
    ret = client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "r-2", "full": True})
    assert ret.status_code == 201, ret.text
    assert tpl_row(world.db, "ten-off") == {"uses": 0, "spent_minor": 0, "issued": 1}
    assert rows(world.db, "SELECT uses FROM coupon_member_use") == [{"uses": 0}]
    assert rows(world.db, "SELECT status FROM coupon_redemption") == [{"status": "restored"}]
    assert client.get(f"/v1/members/{mid}/coupons").json()["items"][0]["status"] == "available"
    # The return replayed restores nothing twice.
    ret = client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "r-2", "full": True})
    assert ret.status_code == 200
    assert tpl_row(world.db, "ten-off") == {"uses": 0, "spent_minor": 0, "issued": 1}
    # ... and the code works again.
    r = client.post("/v1/orders", json={**order, "external_id": "o-3"})
    assert r.status_code == 201, r.text
    assert tpl_row(world.db, "ten-off") == {"uses": 1, "spent_minor": 1000, "issued": 1}


def test_a_template_that_keeps_the_use_on_return(client: Any, world: Any) -> None:
    template(client, {**TEN_OFF, "code": "keep", "restore_on_return": False})
    mid = new_member(client, "13800000002")
    code = issue(client, mid, "keep")
    order = {
        **order_payload("k-1", mid, paid=7000),
        "lines": [{"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 8000}],
        "coupon_minor": 1000,
        "coupons": [code],
    }
    oid = client.post("/v1/orders", json=order).json()["id"]
    client.post(f"/v1/orders/{oid}/returns", json={"return_id": "r", "full": True})
    assert tpl_row(world.db, "keep") == {"uses": 1, "spent_minor": 1000, "issued": 1}
    assert client.get(f"/v1/members/{mid}/coupons").json()["items"][0]["status"] == "used"


def test_reasons_per_code(client: Any, world: Any) -> None:
    template(client, TEN_OFF)
    template(
        client,
        {
            "code": "beans-15",
            "name": "咖啡豆85折",
            "kind": "percent_off",
            "basis_points": 1500,
            "cap_minor": 500,
            "categories": ["coffee_beans"],
            "channels": ["app"],
        },
    )
    a, b = new_member(client, "13800000003"), new_member(client, "13800000004")
    mine, theirs = issue(client, a, "ten-off"), issue(client, b, "ten-off")
    beans = issue(client, a, "beans-15")
    v = client.post(
        "/v1/coupons/validate", json=basket(a, [mine, theirs, "NOPE2345", beans, mine], paid=4000)
    ).json()
    assert [(c["code"], c["reason"]) for c in v["codes"]] == [
        (mine, "min_spend_not_met"),
        (theirs, "not_yours"),
        ("NOPE2345", "unknown_code"),
        (beans, "channel_not_eligible"),
        (mine, "duplicate_code"),
    ]
    assert v["discount_minor"] == 0 and v["valid"] is False
    anon = client.post("/v1/coupons/validate", json=basket(None, [mine])).json()
    assert anon["codes"][0]["reason"] == "member_required"


def test_unknown_codes_are_throttled_per_key(client: Any, world: Any) -> None:
    for i in range(coupons.GUESS_LIMIT):
        r = client.post("/v1/coupons/validate", json=basket(None, [f"GUESS{i:04d}"]))
        assert r.status_code == 200
    assert_problem(
        client.post("/v1/coupons/validate", json=basket(None, ["GUESS9999"])),
        429,
        "coupon_guess_throttled",
    )
    # another key is not throttled by this one's guesses
    with api_client(world.db, world.keys["east"]) as other:
        assert (
            other.post("/v1/coupons/validate", json=basket(None, ["X2345678"])).status_code == 200
        )


def test_batches_generated_inline_imported_and_refused(client: Any, world: Any) -> None:
    template(client, {**TEN_OFF, "code": "flyer", "limit_per_member": None})
    r = client.post(
        "/v1/coupon-batches",
        json={"external_id": "b1", "template": "flyer", "count": 300, "prefix": "FRY", "length": 9},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["generated"]) == ("done", 300)
    codes: list[str] = []
    url = f"/v1/coupon-batches/{r.json()['id']}/codes?limit=200"
    while True:
        page = client.get(url).json()
        codes += page["items"]
        if not page["next_cursor"]:
            break
        url = f"/v1/coupon-batches/{r.json()['id']}/codes?limit=200&cursor={page['next_cursor']}"
    assert len(set(codes)) == 300
    assert all(c.startswith("FRY") and len(c) == 12 for c in codes)
    assert not any(ch in c[3:] for c in codes for ch in "01OIL")
    assert (
        client.post(
            "/v1/coupon-batches",
            json={
                "external_id": "b1",
                "template": "flyer",
                "count": 300,
                "prefix": "FRY",
                "length": 9,
            },
        ).status_code
        == 200
    )
    before = counts(world.db)
    # 8 characters of 31 are 39.6 bits: refused before anything is written
    weak = {"external_id": "b2", "template": "flyer", "count": 10, "length": 8}
    assert_problem(
        client.post("/v1/coupon-batches", json=weak), 422, "coupon_batch_infeasible", "length"
    )
    # 10 of 16 characters: 40 bits, at most 1,099,511 codes (1 in a million of 16^10)
    full = {"external_id": "b3", "template": "flyer", "count": 2_000_000, "length": 10}
    full["alphabet"] = "23456789ABCDEFGH"
    assert_problem(
        client.post("/v1/coupon-batches", json=full), 422, "coupon_batch_infeasible", "count"
    )
    assert client.post("/v1/coupon-batches", json={**full, "count": 20_000_000}).status_code == 422
    look = {"external_id": "b4", "template": "flyer", "count": 5, "alphabet": "0123456789ABCDEFGH"}
    assert_problem(
        client.post("/v1/coupon-batches", json=look), 422, "coupon_batch_infeasible", "alphabet"
    )
    dup = {"external_id": "b5", "template": "flyer", "codes": ["SPRING-2026", "spring2026"]}
    assert_problem(
        client.post("/v1/coupon-batches", json=dup), 422, "coupon_batch_infeasible", "codes.1"
    )
    taken = {"external_id": "b6", "template": "flyer", "codes": ["NEWONE01", codes[0]]}
    assert_problem(
        client.post("/v1/coupon-batches", json=taken), 409, "coupon_codes_exist", "codes.1"
    )
    assert counts(world.db) == before
    ok = {"external_id": "b7", "template": "flyer", "codes": ["SPRING-2026", "Summer 2026"]}
    r = client.post("/v1/coupon-batches", json=ok)
    assert r.status_code == 201 and r.json()["generated"] == 2
    # a batch code can be used by anyone (here an anonymous order), once
    v = client.post("/v1/coupons/validate", json=basket(None, ["spring 2026"])).json()
    assert v["valid"] is True and v["discount_minor"] == 1000


def test_a_large_batch_is_a_job_with_progress(
    client: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coupons, "INLINE_BATCH", 100)
    monkeypatch.setattr(coupons, "CHUNK", 400)
    import loyalist.coupon.tasks  # noqa: F401  (registers coupon.generate_batch)

    template(client, {**TEN_OFF, "code": "big", "limit_per_member": None})
    r = client.post(
        "/v1/coupon-batches", json={"external_id": "big", "template": "big", "count": 1000}
    )
    assert r.status_code == 201
    bid = r.json()["id"]
    assert (r.json()["status"], r.json()["generated"]) == ("pending", 0)
    seen = []
    for _ in range(5):
        for claimed in queue.claim(world.db, "test", limit=1):
            assert queue.execute(world.db, claimed, "test") == "done"
        seen.append(client.get(f"/v1/coupon-batches/{bid}").json()["generated"])
    assert seen == [400, 800, 1000, 1000, 1000]
    assert client.get(f"/v1/coupon-batches/{bid}").json()["status"] == "done"
    assert rows(world.db, "SELECT COUNT(*) AS n FROM coupon_code WHERE batch_id = :b", b=bid) == [
        {"n": 1000}
    ]


def test_issue_coupon_action_runs_once_per_cause(client: Any, world: Any) -> None:
    import loyalist.coupon.actions  # noqa: F401  (registers issue_coupon)

    template(client, TEN_OFF)
    mid = new_member(client, "13800000005")
    with world.db.transaction() as s:
        first = actions.run(
            s,
            "issue_coupon",
            {"template": "ten-off"},
            cause="journey:welcome:1",
            member_id=mid,
            actor=SYSTEM,
        )
    with world.db.transaction() as s:
        again = actions.run(
            s,
            "issue_coupon",
            {"template": "ten-off"},
            cause="journey:welcome:1",
            member_id=mid,
            actor=SYSTEM,
        )
        n = len(list(s.scalars(select(CouponCode).where(CouponCode.member_id == mid))))
    assert (first.replayed, again.replayed) == (False, True)
    assert first.result["code_id"] == again.result["code_id"]
    assert n == 1
    items = client.get(f"/v1/members/{mid}/coupons").json()["items"]
    assert [(c["source"], c["template"]) for c in items] == [("action", "ten-off")]
    # the API: once per reference
    c1, c2 = issue(client, mid, "ten-off", "camp-1"), None
    r = client.post(
        f"/v1/members/{mid}/coupons", json={"template": "ten-off", "reference": "camp-1"}
    )
    assert r.status_code == 200
    c2 = r.json()["code"]
    assert c1 == c2
    with api_client(world.db, world.keys["south"]) as south:  # the member is not in south
        assert_problem(south.post(f"/v1/members/{mid}/coupons", json={"template": "ten-off"}), 404)


def test_a_catalogue_reward_issues_coupons_and_its_cancellation_voids_them(
    client: Any, world: Any
) -> None:
    from tests.itest import apply_document, demo_document

    template(client, {**TEN_OFF, "limit_per_member": None})
    doc = demo_document()
    doc["rewards"] = [
        {
            "code": "voucher",
            "name": "10元券",
            "kind": "coupon",
            "points": 100,
            "coupon_template": "ten-off",
        }
    ]
    apply_document(world.db, doc)
    mid = new_member(client, "13800000006")
    assert client.post(
        f"/v1/members/{mid}/adjustments", json={"points": 500, "reason": "setup"}
    ).status_code in (200, 201)
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "voucher", "quantity": 2})
    assert r.status_code == 201, r.text
    items = client.get(f"/v1/members/{mid}/coupons").json()["items"]
    assert sorted((c["source"], c["status"]) for c in items) == [
        ("reward", "available"),
        ("reward", "available"),
    ]
    rid = r.json()["id"]
    assert (
        client.post(f"/v1/redemptions/{rid}/cancel", json={"reason": "changed mind"}).status_code
        == 200
    )
    items = client.get(f"/v1/members/{mid}/coupons").json()["items"]
    assert [c["status"] for c in items] == ["voided", "voided"]
    v = client.post("/v1/coupons/validate", json=basket(mid, [items[0]["code"]])).json()
    assert v["codes"][0]["reason"] == "voided"


def test_unknown_codes_are_throttled_per_member(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000009", home_store="sh1")
    with api_client(world.db, world.keys["east"]) as east:
        for i in range(coupons.GUESS_LIMIT):
            r = east.post("/v1/coupons/validate", json=basket(mid, [f"MEM{i:05d}"]))
            assert r.status_code == 200
    # the same member through another key: throttled; another member: not
    assert_problem(
        client.post("/v1/coupons/validate", json=basket(mid, ["MEM99999"])),
        429,
        "coupon_guess_throttled",
    )
    template(client, {**TEN_OFF, "limit_per_member": None})
    code = issue(client, mid, "ten-off")
    order = {
        **order_payload("g-1", mid, paid=7000),
        "lines": [{"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 8000}],
        "coupon_minor": 1000,
        "coupons": [code],
    }
    before = counts(world.db)
    assert_problem(client.post("/v1/orders", json=order), 429, "coupon_guess_throttled")
    assert counts(world.db) == before
    other = new_member(client, "13800000010")
    assert client.post("/v1/coupons/validate", json=basket(other, ["MEM99999"])).status_code == 200


def test_permissions_and_scope(client: Any, world: Any) -> None:
    template(client, TEN_OFF)
    mid = new_member(client, "13800000011", home_store="sh1")
    with api_client(world.db, world.keys["hq-read"]) as ro:
        before = counts(world.db)
        assert_problem(ro.post(f"/v1/members/{mid}/coupons", json={"template": "ten-off"}), 403)
        assert_problem(ro.post("/v1/coupon-templates", json={**TEN_OFF, "code": "ro"}), 403)
        assert counts(world.db) == before
        assert ro.get(f"/v1/members/{mid}/coupons").status_code == 200
        assert ro.get("/v1/coupon-templates").json()["items"][0]["code"] == "ten-off"
    with api_client(world.db, world.keys["south"]) as south:
        assert_problem(south.get(f"/v1/members/{mid}/coupons"), 404)
        assert_problem(south.post("/v1/coupons/validate", json=basket(mid, ["ANY23456"])), 404)
        r = south.post(
            "/v1/coupon-batches", json={"external_id": "s", "template": "ten-off", "count": 5}
        )
        assert_problem(r, 403)
    with api_client(world.db, None) as anon:
        assert_problem(anon.get("/v1/coupon-templates"), 401)


def test_a_condition_the_programme_no_longer_parses_refuses_the_code(
    client: Any, world: Any
) -> None:
    from tests.itest import apply_document, demo_document

    template(client, {**TEN_OFF, "code": "black", "when": {"gte": {"member.tier": "black"}}})
    mid = new_member(client, "13800000012")
    code = issue(client, mid, "black")
    doc = demo_document()
    doc["tiers"]["levels"] = [t for t in doc["tiers"]["levels"] if t["code"] != "black"]
    doc["rewards"] = [r for r in doc["rewards"] if r.get("min_tier") != "black"]
    apply_document(world.db, doc)
    v = client.post("/v1/coupons/validate", json=basket(mid, [code]))
    assert v.status_code == 200, v.text
    assert v.json()["codes"][0]["reason"] == "condition_not_met"
