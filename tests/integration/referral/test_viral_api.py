"""Friend-assist and groups through the API; quarterly referral leaders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from tests.itest import assert_problem, counts, new_member

from loyalist import bootstrap
from loyalist.documents import service as documents
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.models import (
    LedgerEntry,
    OutboxEvent,
    Referral,
    ReferralLeader,
    ViralAssist,
    ViralAssistHelp,
)
from loyalist.referral import config

DOC: dict[str, Any] = {
    "referral": {
        "leaders": {
            "min_qualified": 5,
            "rewards": [
                {"action": "award_points", "params": {"points": 1000, "reason": "季度之星"}}
            ],
        }
    },
    "assist": [
        {
            "code": "coffee-help",
            "name": {"zh_CN": "好友助力得咖啡", "en": "Friends help you to a coffee"},
            "helps": 3,
            "hours": 24,
            "rewards": [{"action": "award_points", "params": {"points": 200, "reason": "助力"}}],
        }
    ],
    "groups": [
        {
            "code": "trio",
            "name": {"zh_CN": "三人团", "en": "Team of three"},
            "size": 3,
            "hours": 24,
            "rewards": [{"action": "award_points", "params": {"points": 150, "reason": "拼团"}}],
        }
    ],
}
TABLES = ["viral_assist", "viral_assist_help", "viral_group", "viral_group_member", "ledger_entry"]


@pytest.fixture
def campaigns(world: Any) -> None:
    bootstrap.configure()
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, config.KIND, DOC, note="test")


def rewards(db: Database, mid: int) -> list[tuple[int, str | None]]:
    with db.transaction() as s:
        return [
            (e.delta_available, e.reason)
            for e in s.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.member_id == mid, LedgerEntry.source_type == "action")
                .order_by(LedgerEntry.id)
            )
        ]


def event_types(db: Database, prefix: str) -> list[str]:
    with db.transaction() as s:
        return [
            e.type
            for e in s.scalars(
                select(OutboxEvent).where(OutboxEvent.type.like(prefix)).order_by(OutboxEvent.id)
            )
        ]


def test_assist_completes_with_n_distinct_friends_and_pays_once(
    world: Any, client: Any, campaigns: None
) -> None:
    starter = new_member(client, "13900000001")
    friends = [new_member(client, f"1390000001{i}") for i in range(4)]
    listed = client.get("/v1/campaigns").json()
    assert [c["code"] for c in listed["assist"]] == ["coffee-help"]
    r = client.post("/v1/assists", json={"campaign": "coffee-help", "member_id": starter})
    assert r.status_code == 201, r.text
    a = r.json()
    assert (a["needed"], a["helps"], a["status"]) == (3, 0, "open")
    again = client.post("/v1/assists", json={"campaign": "coffee-help", "member_id": starter})
    assert again.status_code == 200 and again.json()["id"] == a["id"]
    before = counts(world.db, TABLES)
    assert_problem(
        client.post(f"/v1/assists/{a['id']}/helps", json={"member_id": starter}),
        409,
        "own_assist",
    )
    assert counts(world.db, TABLES) == before
    h = client.post(f"/v1/assists/{a['id']}/helps", json={"member_id": friends[0]})
    assert h.status_code == 200 and h.json()["helps"] == 1
    before = counts(world.db, TABLES)
    assert_problem(
        client.post(f"/v1/assists/{a['id']}/helps", json={"member_id": friends[0]}),
        409,
        "already_helped",
    )
    assert counts(world.db, TABLES) == before
    for f in friends[1:3]:
        h = client.post(f"/v1/assists/{a['id']}/helps", json={"member_id": f})
        assert h.status_code == 200, h.text
    done = client.get(f"/v1/assists/{a['id']}").json()
    assert (done["helps"], done["status"], done["helpers"]) == (3, "completed", friends[:3])
    assert rewards(world.db, starter) == [(200, "助力")]
    assert_problem(
        client.post(f"/v1/assists/{a['id']}/helps", json={"member_id": friends[3]}),
        409,
        "assist_closed",
    )
    assert rewards(world.db, starter) == [(200, "助力")]
    assert event_types(world.db, "assist.%") == ["assist.completed"]
    # The database itself refuses the starter's help and a second help by one friend.
    for helper in (starter, friends[0]):
        with pytest.raises(IntegrityError), world.db.transaction() as s:
            s.add(
                ViralAssistHelp(
                    assist_id=a["id"], starter_id=starter, helper_id=helper, created_at=utcnow()
                )
            )
            s.flush()


def test_a_full_group_pays_every_member_once(
    world: Any, client: Any, clock: Any, campaigns: None
) -> None:
    a, b, c, d = (new_member(client, f"1390000002{i}") for i in range(4))
    g = client.post("/v1/groups", json={"campaign": "trio", "member_id": a})
    assert g.status_code == 201, g.text
    gid = g.json()["id"]
    assert_problem(
        client.post("/v1/groups", json={"campaign": "trio", "member_id": a}),
        409,
        "already_in_group",
    )
    assert client.post(f"/v1/groups/{gid}/members", json={"member_id": b}).status_code == 200
    assert_problem(
        client.post(f"/v1/groups/{gid}/members", json={"member_id": b}), 409, "already_in_group"
    )
    full = client.post(f"/v1/groups/{gid}/members", json={"member_id": c}).json()
    assert (full["status"], full["members"]) == ("complete", [a, b, c])
    for m in (a, b, c):
        assert rewards(world.db, m) == [(150, "拼团")]
    assert_problem(
        client.post(f"/v1/groups/{gid}/members", json={"member_id": d}), 409, "group_closed"
    )
    clock.advance(timedelta(hours=25))
    assert queue.run_until_empty(world.db) == 1  # the deadline job finds nothing to dissolve
    assert client.get(f"/v1/groups/{gid}").json()["status"] == "complete"
    for m in (a, b, c):
        assert rewards(world.db, m) == [(150, "拼团")]
    assert event_types(world.db, "group.%") == ["group.completed"]


def test_an_unfilled_group_dissolves_at_its_deadline_even_after_the_worker_was_down(
    world: Any, client: Any, clock: Any, campaigns: None
) -> None:
    a, b, c = (new_member(client, f"1390000003{i}") for i in range(3))
    gid = client.post("/v1/groups", json={"campaign": "trio", "member_id": a}).json()["id"]
    client.post(f"/v1/groups/{gid}/members", json={"member_id": b})
    # An assist with one help of three, the same 24 hours.
    aid = client.post("/v1/assists", json={"campaign": "coffee-help", "member_id": a}).json()["id"]
    client.post(f"/v1/assists/{aid}/helps", json={"member_id": b})
    # Before the deadline the jobs are not due.
    assert queue.run_until_empty(world.db) == 0
    # No worker runs across the deadline; a late joiner or helper is refused meanwhile.
    clock.advance(timedelta(hours=30))
    before = counts(world.db, TABLES)
    assert_problem(
        client.post(f"/v1/groups/{gid}/members", json={"member_id": c}), 409, "group_closed"
    )
    assert_problem(
        client.post(f"/v1/assists/{aid}/helps", json={"member_id": c}), 409, "assist_closed"
    )
    assert counts(world.db, TABLES) == before
    assert client.get(f"/v1/groups/{gid}").json()["status"] == "expired"
    assert client.get(f"/v1/assists/{aid}").json()["status"] == "expired"
    # The worker comes back: the overdue jobs dissolve the group and expire the assist,
    # once, with no reward.
    assert queue.run_until_empty(world.db) == 2
    g = client.get(f"/v1/groups/{gid}").json()
    assert g["status"] == "dissolved" and g["dissolved_at"] is not None
    with world.db.transaction() as s:
        row = s.get(ViralAssist, aid)
        assert row is not None and row.status == "expired"  # stored, not only shown
    assert queue.run_until_empty(world.db) == 0
    for m in (a, b, c):
        assert rewards(world.db, m) == []
    assert event_types(world.db, "group.%") == ["group.dissolved"]
    assert event_types(world.db, "assist.%") == []


def test_quarter_leaders_get_the_bonus_once(
    world: Any, client: Any, clock: Any, campaigns: None
) -> None:
    star = new_member(client, "13900000040")
    other = new_member(client, "13900000041")
    friends = [new_member(client, f"139000001{i:02d}") for i in range(9)]
    in_q2 = datetime(2026, 6, 20, 4, 0, tzinfo=UTC)
    in_q3 = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)  # 12:00 on 1 July in Shanghai
    with world.db.transaction() as s:
        for i, f in enumerate(friends):
            referrer = star if i < 5 else other
            when = in_q2 if i < 8 else in_q3  # other: 3 in Q2 (too few) + 1 in Q3
            s.add(
                Referral(
                    referrer_id=referrer,
                    referred_id=f,
                    code="X",
                    channel="join",
                    org_path="/",
                    status="rewarded",
                    hold_reasons=[],
                    qualified_at=when,
                    created_at=when,
                    updated_at=when,
                )
            )
    clock.freeze(datetime(2026, 6, 30, 16, 30, tzinfo=UTC))  # 00:30 on 1 July in Shanghai
    with world.db.transaction() as s:
        queue.enqueue(s, "referral.leaders", {}, dedupe_key="t:leaders")
        queue.enqueue(s, "referral.leaders", {"period": "2026Q2"}, dedupe_key="t:leaders:again")
    assert queue.run_until_empty(world.db) == 2
    assert rewards(world.db, star) == [(1000, "季度之星")]
    assert rewards(world.db, other) == []
    with world.db.transaction() as s:
        rows = [(r.period, r.member_id, r.qualified) for r in s.scalars(select(ReferralLeader))]
    assert rows == [("2026Q2", star, 5)]
    assert event_types(world.db, "referral.leader") == ["referral.leader"]
    body = client.get("/v1/referrals/leaders", params={"period": "2026Q2"}).json()
    assert body == {
        "period": "2026Q2",
        "items": [{"period": "2026Q2", "member_id": star, "qualified": 5}],
    }
    assert_problem(client.get("/v1/referrals/leaders", params={"period": "2026-2"}), 422)


def test_concurrent_helps_count_exactly_and_pay_once(
    world: Any, client: Any, campaigns: None
) -> None:
    """Eight friends help at once an assist that needs three: three helps count, five are
    refused as closed, the starter is paid once."""
    import threading

    from loyalist.errors import LoyalistError
    from loyalist.viral import service as viral

    starter = new_member(client, "13900000050")
    friends = [new_member(client, f"139000000{60 + i}") for i in range(8)]
    aid = client.post("/v1/assists", json={"campaign": "coffee-help", "member_id": starter}).json()[
        "id"
    ]
    outcomes: list[str] = []
    gate = threading.Barrier(len(friends))

    def help_(friend: int) -> None:
        gate.wait()
        try:
            world.db.run(lambda s: viral.help_assist(s, SYSTEM, aid, friend))
            outcomes.append("ok")
        except LoyalistError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=help_, args=(f,)) for f in friends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["assist_closed"] * 5 + ["ok"] * 3
    a = client.get(f"/v1/assists/{aid}").json()
    assert (a["helps"], a["status"], len(a["helpers"])) == (3, "completed", 3)
    assert rewards(world.db, starter) == [(200, "助力")]
