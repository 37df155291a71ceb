"""Badges and challenges from the event stream: criteria in the condition language over
counters, windows, rewards through actions, once per event and once per member."""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.cli.test_cli_commands import cli, run  # noqa: F401 (fixtures)
from tests.integration.habits.habits_support import publish
from tests.itest import new_member, rows
from tests.support import order_payload

import loyalist.habits.handlers  # noqa: F401  (registers the "habits" consumer)
from loyalist.documents.errors import DocumentInvalid
from loyalist.events import consumers

DOC: dict[str, Any] = {
    "badges": [
        {
            "code": "regular",
            "name": {"zh_CN": "常客", "en": "Regular"},
            "criteria": {"gte": {"orders": 2}},
        },
        {
            "code": "explorer",
            "name": {"zh_CN": "探索家", "en": "Explorer"},
            "icon": "bag",
            "criteria": {"all": [{"gte": {"categories": 2}}, {"gte": {"spend_minor": 5000}}]},
            "window_days": 30,
            "actions": [{"action": "award_points", "params": {"points": 20, "reason": "badge"}}],
        },
        {
            "code": "reviewer",
            "name": {"zh_CN": "点评达人", "en": "Reviewer"},
            "criteria": {"gte": {"reviews": 1}},
        },
    ],
    "challenges": [
        {
            "code": "june-3",
            "name": {"zh_CN": "六月消费三次", "en": "Three visits in June"},
            "starts_at": "2026-06-01T00:00:00+08:00",
            "ends_at": "2026-07-01T00:00:00+08:00",
            "counter": "orders",
            "goal": 3,
            "actions": [{"action": "award_points", "params": {"points": 100, "reason": "june"}}],
        }
    ],
    "activities": {"review": {"points": 5}},
}


def drain(db: Any) -> None:
    while consumers.run_pending(db):
        pass


def order(client: Any, ext: str, mid: int, category: str, at: str, paid: int = 3000) -> None:
    line = [{"sku": ext, "category": category, "quantity": 1, "unit_price_minor": paid}]
    r = client.post(
        "/v1/orders", json=order_payload(ext, mid, paid=paid, occurred_at=at, lines=line)
    )
    assert r.status_code == 201, r.text


def test_badges_and_a_challenge_from_orders(world: Any, client: Any, clock: Any) -> None:
    publish(world.db, DOC)
    mid = new_member(client, "13900000001")
    order(client, "o1", mid, "coffee", "2026-06-10T11:00:00+08:00")
    drain(world.db)
    h = client.get(f"/v1/members/{mid}/habits", params={"locale": "zh_CN"}).json()
    assert [(b["code"], b["name"], b["earned"]) for b in h["badges"]] == [
        ("regular", "常客", False),
        ("explorer", "探索家", False),
        ("reviewer", "点评达人", False),
    ]
    assert [(c["progress"], c["goal"], c["status"]) for c in h["challenges"]] == [(1, 3, "active")]
    order(client, "o2", mid, "tea", "2026-06-10T09:00:00+08:00")
    drain(world.db)
    h = client.get(f"/v1/members/{mid}/habits").json()
    assert {b["code"] for b in h["badges"] if b["earned"]} == {"regular", "explorer"}
    order(client, "o3", mid, "tea", "2026-06-10T10:00:00+08:00")
    order(client, "o4", mid, "tea", "2026-06-10T10:30:00+08:00")
    drain(world.db)
    drain(world.db)  # nothing left: nothing changes
    h = client.get(f"/v1/members/{mid}/habits").json()
    assert [(c["progress"], c["status"]) for c in h["challenges"]] == [(3, "completed")]
    awards = rows(
        world.db,
        "SELECT delta_available, reason FROM ledger_entry WHERE member_id = :m "
        "AND source_type = 'action' ORDER BY id",
        m=mid,
    )
    assert [(a["delta_available"], a["reason"]) for a in awards] == [(20, "badge"), (100, "june")]
    badges = rows(
        world.db, "SELECT badge FROM member_badge WHERE member_id = :m ORDER BY id", m=mid
    )
    assert [b["badge"] for b in badges] == ["regular", "explorer"]
    events = rows(
        world.db,
        "SELECT type FROM outbox_event WHERE type IN ('badge.awarded', 'challenge.completed') "
        "ORDER BY id",
    )
    assert [e["type"] for e in events] == ["badge.awarded", "badge.awarded", "challenge.completed"]
    facts = rows(
        world.db,
        "SELECT counter, label, amount FROM habit_fact WHERE member_id = :m ORDER BY id",
        m=mid,
    )
    assert [(f["counter"], f["label"], f["amount"]) for f in facts][:3] == [
        ("orders", "", 1),
        ("spend_minor", "", 3000),
        ("categories", "coffee", 1),
    ]
    assert len(facts) == 4 * 3


def test_a_review_earns_a_badge_and_the_window_and_expiry_hold(
    world: Any, client: Any, clock: Any
) -> None:
    publish(world.db, DOC)
    mid = new_member(client, "13900000002")
    r = client.post(f"/v1/members/{mid}/activities", json={"activity": "review", "ref": "rv-1"})
    assert r.status_code == 201, r.text
    drain(world.db)
    h = client.get(f"/v1/members/{mid}/habits").json()
    assert [b["code"] for b in h["badges"] if b["earned"]] == ["reviewer"]
    # explorer's window is 30 days: two categories 40 days apart never earn it
    order(client, "p1", mid, "coffee", "2026-06-10T11:00:00+08:00", paid=6000)
    drain(world.db)
    from datetime import timedelta

    clock.advance(timedelta(days=40))  # 20 July: the challenge has ended
    order(client, "p2", mid, "tea", "2026-07-20T11:00:00+08:00", paid=6000)
    order(client, "p3", mid, "tea", "2026-07-20T12:00:00+08:00", paid=6000)
    drain(world.db)
    h = client.get(f"/v1/members/{mid}/habits").json()
    assert "explorer" not in [b["code"] for b in h["badges"] if b["earned"]]
    assert [(c["progress"], c["status"]) for c in h["challenges"]] == [(1, "expired")]


def test_bad_criteria_are_refused_with_their_path(world: Any) -> None:
    doc = {
        "badges": [
            {
                "code": "x",
                "name": {"zh_CN": "x", "en": "x"},
                "criteria": {"all": [{"gte": {"orders": 1}}, {"gte": {"nonsense": 1}}]},
            }
        ]
    }
    with pytest.raises(DocumentInvalid) as e:
        publish(world.db, doc)
    assert "badges.0.criteria.all.1.gte" in str(e.value)
    with pytest.raises(DocumentInvalid) as e:
        publish(
            world.db,
            {
                "checkins": {
                    "bonuses": [{"day": 7, "actions": [{"action": "no_such", "params": {}}]}]
                }
            },
        )
    assert rows(world.db, "SELECT id FROM config_document WHERE kind = 'habits'") == []


def test_the_demo_document_applies_through_the_cli(world: Any, cli: Any) -> None:  # noqa: F811
    from pathlib import Path

    import loyalist.demo

    path = Path(loyalist.demo.__file__).with_name("habits.yaml")
    r = cli("documents", "apply", "habits", str(path), "--note", "demo")
    assert r.exit_code == 0, r.output
    assert "habits version 1 is published" in r.stdout
    r = cli("documents", "kinds")
    assert "habits" in r.stdout
    r = cli("documents", "apply", "habits", str(path))
    assert "unchanged: habits version 1 already has this content" in r.stdout
