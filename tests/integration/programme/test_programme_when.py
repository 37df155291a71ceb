"""``when:`` conditions through the API: the earn path, member facts, dry-run explanations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from tests.itest import apply_document, assert_problem, demo_document, new_member
from tests.support import order_payload

from loyalist.kit.db import Database

WED = "2026-06-10T11:00:00+08:00"  # a Wednesday in Shanghai
THU = "2026-06-04T11:00:00+08:00"
MEMBER_DAY_WHEN = {
    "all": [
        {"eq": {"time.weekday": "wed"}},
        {"gte": {"member.tier": "gold"}},
        {"gte": {"order.amount_minor": 10000}},
    ]
}


def conditioned_demo() -> dict[str, Any]:
    doc = demo_document()
    doc["earning"]["campaigns"][0]["when"] = MEMBER_DAY_WHEN
    doc["earning"]["rules"].append(
        {
            "code": "east-vip",
            "name": "华东 VIP 三倍",
            "kind": "multiplier",
            "multiplier": "3",
            "when": {
                "all": [
                    {"contains": {"member.tags": "vip"}},
                    {"eq": {"member.region": "east"}},
                    {"eq": {"member.consent.sms": True}},
                ]
            },
        }
    )
    return doc


def breakdown(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(b["rule"], b["points"]) for b in body["points"]["breakdown"]]


def test_orders_earn_by_conditions_on_the_members_facts(world: Any, client: Any) -> None:
    apply_document(world.db, conditioned_demo())
    vip = new_member(client, "13800000001", home_store="sh1", tags=["vip"], consents={"sms": True})
    south_vip = new_member(
        client, "13800000002", home_store="sz1", tags=["vip"], consents={"sms": True}
    )
    plain = new_member(client, "13800000003", home_store="sh1")
    r = client.post("/v1/orders", json=order_payload("o1", vip, paid=10_000, occurred_at=WED))
    assert r.status_code == 201, r.text
    # Base member on a Wednesday: the member day's tier clause fails; the VIP rule applies.
    assert breakdown(r.json()) == [("base", 100), ("rule:east-vip", 200)]
    r = client.post("/v1/orders", json=order_payload("o2", south_vip, paid=10_000, occurred_at=WED))
    assert breakdown(r.json()) == [("base", 100)]
    r = client.post("/v1/orders", json=order_payload("o3", plain, paid=10_000, occurred_at=THU))
    assert breakdown(r.json()) == [("base", 100)]


def _count_queries(db: Database) -> Any:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    return seen, lambda: event.remove(db.engine, "before_cursor_execute", before)


def test_member_facts_are_loaded_only_when_a_condition_reads_them(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", home_store="sh1", tags=["vip"])
    seen, stop = _count_queries(world.db)
    try:
        client.post("/v1/orders", json=order_payload("a", mid, paid=10_000, occurred_at=THU))
    finally:
        stop()
    assert not [q for q in seen if "member_tag" in q or "member_consent" in q]
    apply_document(world.db, conditioned_demo())
    seen, stop = _count_queries(world.db)
    try:
        client.post("/v1/orders", json=order_payload("b", mid, paid=10_000, occurred_at=THU))
    finally:
        stop()
    assert len([q for q in seen if "FROM member_tag" in q]) == 1
    assert len([q for q in seen if "FROM member_consent" in q]) == 1


def test_dry_run_explains_each_clause(world: Any, client: Any) -> None:
    apply_document(world.db, conditioned_demo())
    sample = order_payload("x", None, paid=12_000, occurred_at=WED)
    r = client.post("/v1/programme/dry-run", json={"order": sample, "tier": "gold"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["points"] == 360
    assert [c["rule"] for c in body["conditions"]] == ["rule:east-vip", "campaign:member-day"]
    vip, member_day = body["conditions"]
    assert (vip["passed"], member_day["passed"]) == (False, True)
    assert member_day["name"] == "每周三会员日双倍积分"
    assert member_day["explanation"] == {
        "op": "all",
        "passed": True,
        "path": "",
        "children": [
            {
                "op": "eq",
                "passed": True,
                "path": "all.0",
                "field": "time.weekday",
                "expected": "wed",
                "actual": "wed",
                "text": "time.weekday eq wed (actual: wed)",
            },
            {
                "op": "gte",
                "passed": True,
                "path": "all.1",
                "field": "member.tier",
                "expected": "gold",
                "actual": "gold",
                "text": "member.tier gte gold (actual: gold)",
            },
            {
                "op": "gte",
                "passed": True,
                "path": "all.2",
                "field": "order.amount_minor",
                "expected": 10000,
                "actual": 12000,
                "text": "order.amount_minor gte 10000 (actual: 12000)",
            },
        ],
    }
    # Sample member facts make the VIP rule apply; every clause is still shown.
    r = client.post(
        "/v1/programme/dry-run",
        json={
            "order": sample,
            "tier": "gold",
            "member": {"tags": ["vip"], "region": "east", "consent": {"sms": True}},
        },
    )
    body = r.json()
    assert body["conditions"][0]["passed"] is True
    assert [c["passed"] for c in body["conditions"][0]["explanation"]["children"]] == [True] * 3
    assert [(b["rule"], b["points"]) for b in body["breakdown"]] == [
        ("base", 120),
        ("rule:east-vip", 240),
        ("campaign:member-day", 360),
        ("tier:gold", 360),
    ]


def test_dry_run_refuses_bad_sample_facts(world: Any, client: Any) -> None:
    sample = order_payload("x", None, paid=12_000, occurred_at=WED)
    r = client.post(
        "/v1/programme/dry-run",
        json={"order": sample, "member": {"tags": "vip", "colour": "red", "joined_days": "9"}},
    )
    body = assert_problem(r, 422)
    assert [(e["field"], e["message"]) for e in body["errors"]] == [
        ("member.tags", "expected a list of text, got str"),
        ("member.colour", "unknown field 'member.colour'"),
        ("member.joined_days", "expected a int value, got str '9'"),
    ]


def test_apply_refuses_an_invalid_condition_with_its_path(world: Any, client: Any) -> None:
    from tests.itest import counts

    doc = demo_document()
    doc["earning"]["campaigns"][0]["when"] = {
        "all": [{"eq": {"time.weekday": "wed"}}, {"gte": {"member.tier": 3}}]
    }
    before = counts(world.db, ["programme_version", "outbox_event", "audit_log"])
    from loyalist.programme.errors import ProgrammeInvalid

    try:
        apply_document(world.db, doc)
    except ProgrammeInvalid as exc:
        assert [(e.field, e.message) for e in exc.errors] == [
            ("earning.campaigns.0.when.all.1.gte", "expected a str value, got int 3")
        ]
    else:
        raise AssertionError("applied an invalid condition")
    assert counts(world.db, ["programme_version", "outbox_event", "audit_log"]) == before
