"""The programme as versioned data: a new version never rewrites the past, the catalogue
follows it, and the dry run shows what each rule would give without writing anything."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.itest import apply_document, assert_problem, counts, demo_document, new_member, rows
from tests.support import order_payload

from loyalist.kit.actor import SYSTEM
from loyalist.member import service as members
from loyalist.programme import service as programmes
from loyalist.programme.errors import ProgrammeInvalid

MONDAY = "2026-06-08T10:00:00+08:00"
WEDNESDAY = "2026-06-10T10:00:00+08:00"  # member day: 2×
LINES = [
    {"sku": "BEANS", "category": "coffee_beans", "quantity": 2, "unit_price_minor": 5000},
    {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 3000},
]


def breakdown(body: dict[str, Any]) -> list[tuple[str, int, list[int]]]:
    return [(b["rule"], b["points"], b["lines"]) for b in body["breakdown"]]


def test_a_new_version_never_rewrites_past_entries(world: Any, client: Any) -> None:
    db = world.db
    mid = new_member(client, "13800000001")
    old = client.post(
        "/v1/orders", json=order_payload("v1", mid, paid=13_000, lines=LINES, occurred_at=MONDAY)
    ).json()
    assert old["programme_version"] == 1
    assert old["points"]["earned"] == 230  # 130 base + beans 2× on 100
    old_entries = client.get(f"/v1/members/{mid}/ledger").json()["items"]
    v1_doc = client.get("/v1/programme").json()["document"]

    doc = demo_document()
    doc["earning"]["base"] = {"points_per_unit": 2, "unit_minor": 100}
    doc["earning"]["rules"][0]["multiplier"] = "3"  # beans 3×
    assert apply_document(db, doc) == 2

    # the past is as it was: the order, its entry (and the rule version it names), v1 itself
    assert client.get(f"/v1/orders/{old['id']}").json() == old
    assert client.get(f"/v1/members/{mid}/ledger").json()["items"] == old_entries
    assert old_entries[0]["programme_version"] == 1
    assert old_entries[0]["details"]["breakdown"] == old["points"]["breakdown"]
    with db.transaction() as s:
        assert programmes.as_document(programmes.get_version(s, 1)) == v1_doc
    versions = client.get("/v1/programme/versions").json()["items"]
    assert [v["version"] for v in versions] == [1, 2]
    assert client.get("/v1/programme").json()["version"] == 2

    new = client.post(
        "/v1/orders", json=order_payload("v2", mid, paid=13_000, lines=LINES, occurred_at=MONDAY)
    ).json()
    assert new["programme_version"] == 2
    assert [(b["rule"], b["points"]) for b in new["points"]["breakdown"]] == [
        ("base", 260),  # 2 points per ¥1
        ("rule:beans-x2", 400),  # the rule keeps its code; its multiplier is now 3
    ]
    entry = client.get(f"/v1/members/{mid}/ledger").json()["items"][0]
    assert (entry["programme_version"], entry["available"] + entry["pending"]) == (2, 660)

    # a return of the old order claws back what it earned then, not what v2 would give
    r = client.post(
        f"/v1/orders/{old['id']}/returns",
        json={"return_id": "back", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert r.json()["points_clawed"] == 100  # half of line 1's 200 under v1


def test_rule_codes_name_the_rule_that_gave_points(world: Any, client: Any) -> None:
    doc = demo_document()
    doc["earning"]["rules"][0]["code"] = "beans-x3"
    doc["earning"]["rules"][0]["multiplier"] = "3"
    apply_document(world.db, doc)
    mid = new_member(client, "13800000001")
    o = client.post(
        "/v1/orders", json=order_payload("o", mid, paid=13_000, lines=LINES, occurred_at=MONDAY)
    ).json()
    assert [(b["rule"], b["points"], b["lines"]) for b in o["points"]["breakdown"]] == [
        ("base", 130, [1, 2]),
        ("rule:beans-x3", 200, [1]),
    ]


def test_applying_the_same_document_twice_creates_nothing(world: Any) -> None:
    before = counts(world.db)
    assert apply_document(world.db, demo_document()) == 1
    assert counts(world.db) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["tiers"].update(levels=d["tiers"]["levels"][:2]), "tiers.levels"),
        (lambda d: d["tiers"]["levels"][1].update(threshold=-1), "tiers.levels.1.threshold"),
        (lambda d: d.update(bogus=1), "bogus"),
        (lambda d: d.update(timezone="Mars/Olympus_Mons"), "timezone"),
        (lambda d: d.update(currency="XXX"), "currency"),
        (lambda d: d["points"].update(expiry={"kind": "rolling_months"}), "points.expiry"),
        (lambda d: d["earning"]["rules"][0].update(multiplier="1e9"), "earning.rules.0.multiplier"),
        (
            lambda d: d["earning"]["rules"][0].update(multiplier="fast"),
            "earning.rules.0.multiplier",
        ),
        (lambda d: d["rewards"][0].update(points=0), "rewards.0.points"),
        (
            lambda d: d["rewards"][0].update(valid_from="2026-01-01T00:00:00"),
            "rewards.0.valid_from",
        ),
        (lambda d: d["rewards"][0].update(min_tier="diamond"), "$"),
        (
            lambda d: d["earning"]["campaigns"][1].update(date_to="2026-01-01"),
            "earning.campaigns.1",
        ),
    ],
)
def test_invalid_documents_name_the_field_and_apply_nothing(
    world: Any, client: Any, change: Any, field: str
) -> None:
    doc = copy.deepcopy(demo_document())
    change(doc)
    before = counts(world.db)
    with pytest.raises(ProgrammeInvalid) as info:
        apply_document(world.db, doc)
    assert field in [e.field for e in info.value.errors], info.value.errors
    assert info.value.code == "programme_invalid"
    if field == "$":  # a cross-reference: the message names the reward and its field
        assert "reward 'americano': min_tier 'diamond' is not a tier" in info.value.detail
    assert counts(world.db) == before
    assert client.get("/v1/programme").json()["version"] == 1


def test_the_catalogue_follows_the_programme_and_keeps_what_was_redeemed(
    world: Any, client: Any
) -> None:
    mid = new_member(client, "13800000001")
    # seeded by the service: above the approval threshold the API would only file a request
    with world.db.transaction() as s:
        members.adjust_points(s, SYSTEM, mid, 100_000, "setup")
    for _ in range(3):
        r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "croissant"})
        assert r.status_code == 201
    doc = demo_document()
    doc["rewards"] = [
        {**r, "stock": 10} if r["code"] == "croissant" else r
        for r in doc["rewards"]
        if r["code"] != "tote"
    ]
    apply_document(world.db, doc)
    by_code = {r["code"]: r for r in client.get("/v1/rewards").json()["items"]}
    assert by_code["croissant"]["stock_remaining"] == 7  # 10 in total, 3 already redeemed
    assert "tote" not in by_code
    assert_problem(
        client.post("/v1/redemptions", json={"member_id": mid, "reward": "tote"}),
        404,
        "reward_not_found",
    )
    (tote,) = rows(world.db, "SELECT active FROM reward WHERE code = 'tote'")
    assert not tote["active"]  # kept for history, not deleted


def test_dry_run_explains_each_rule_and_writes_nothing(world: Any, client: Any) -> None:
    before = counts(world.db)
    sample = order_payload("sample", None, paid=13_000, lines=LINES, occurred_at=WEDNESDAY)
    r = client.post("/v1/programme/dry-run", json={"order": sample, "tier": "gold"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["programme_version"] == 1
    assert breakdown(body) == [
        ("base", 130, [1, 2]),
        ("rule:beans-x2", 100, [1]),
        ("campaign:member-day", 230, [1, 2]),
        ("tier:gold", 230, [1, 2]),
    ]
    assert body["points"] == 690
    assert body["line_points"] == {"1": 600, "2": 90}
    # against an earlier version, after a new one is applied
    doc = demo_document()
    doc["earning"]["campaigns"] = []
    apply_document(world.db, doc)
    before = counts(world.db)
    now = client.post("/v1/programme/dry-run", json={"order": sample, "tier": "gold"}).json()
    assert (now["programme_version"], now["points"]) == (2, 345)
    then = client.post(
        "/v1/programme/dry-run", json={"order": sample, "tier": "gold", "programme_version": 1}
    ).json()
    assert (then["programme_version"], then["points"]) == (1, 690)
    capped = client.post(
        "/v1/programme/dry-run", json={"order": sample, "earned_today": 49_900}
    ).json()
    assert capped["points"] == 100
    assert breakdown(capped)[-1][0] == "cap:per_day"
    assert counts(world.db) == before
