"""Check-ins and streaks through the API: Asia/Shanghai with a 04:00 day start, New York
across both DST changes, a travelling member, streak bonuses, and replay."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tests.integration.habits.habits_support import publish
from tests.itest import apply_document, assert_problem, counts, demo_document, new_member, rows

from loyalist.habits import domain
from loyalist.habits import service as habits
from loyalist.habits.schemas import CheckinIn
from loyalist.kit.actor import SYSTEM
from loyalist.models import OutboxEvent

DOC: dict[str, Any] = {
    "checkins": {
        "day_start": "04:00",
        "bonuses": [
            {
                "day": 3,
                "actions": [
                    {"action": "award_points", "params": {"points": 50, "reason": "3-day streak"}}
                ],
                "boost_multiplier": "2",
                "boost_days": 2,
            }
        ],
    },
    "activities": {"checkin": {"points": 5}},
}


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def check_in(client: Any, clock: Any, mid: int, when: datetime, tz: str | None = None) -> Any:
    clock.freeze(when)
    return client.post(f"/v1/members/{mid}/checkins", json={"client_tz": tz} if tz else {})


def balance(client: Any, mid: int) -> int:
    r = client.get(f"/v1/members/{mid}")
    assert r.status_code == 200, r.text
    return int(r.json()["points"]["available"])


def test_shanghai_day_start_streak_bonus_and_boost(world: Any, client: Any, clock: Any) -> None:
    publish(world.db, DOC)
    mid = new_member(client, "13800000001")
    # 11 June 03:59 Shanghai (10 June 19:59 UTC) still counts for 10 June
    r = check_in(client, clock, mid, at(2026, 6, 10, 19, 59))
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["local_day"], body["streak"], body["points"], body["bonuses"]) == (
        "2026-06-10",
        1,
        5,
        [],
    )
    assert body["next_day_starts_at"] == "2026-06-10T20:00:00Z".replace("Z", "+00:00")
    # 04:00 the same night is the next day: streak 2
    r = check_in(client, clock, mid, at(2026, 6, 10, 20, 0))
    assert (r.status_code, r.json()["local_day"], r.json()["streak"]) == (201, "2026-06-11", 2)
    # again on 11 June (23:00 Shanghai): refused, nothing written
    before = counts(world.db)
    r = check_in(client, clock, mid, at(2026, 6, 11, 15, 0))
    problem = assert_problem(r, 409, "already_checked_in")
    assert (problem["local_day"], problem["streak"]) == ("2026-06-11", 2)
    assert counts(world.db) == before
    # day 3 unlocks the bonus (50 points) and the boost (check-in points doubled 2 days)
    r = check_in(client, clock, mid, at(2026, 6, 12, 1, 0))
    assert (r.json()["streak"], r.json()["points"], r.json()["bonuses"]) == (3, 10, [3])
    r = check_in(client, clock, mid, at(2026, 6, 13, 1, 0))
    assert (r.json()["streak"], r.json()["points"]) == (4, 10)
    r = check_in(client, clock, mid, at(2026, 6, 14, 1, 0))
    assert (r.json()["streak"], r.json()["points"]) == (5, 5)  # the boost is over
    assert balance(client, mid) == 5 + 5 + 10 + 50 + 10 + 5
    # a day missed: the streak starts again, the bonus is not paid twice
    r = check_in(client, clock, mid, at(2026, 6, 16, 1, 0))
    assert (r.json()["streak"], r.json()["bonuses"]) == (1, [])
    h = client.get(f"/v1/members/{mid}/habits").json()
    assert (h["streak"], h["longest_streak"], h["checked_in_today"]) == (1, 5, True)
    assert h["today"] == "2026-06-16"
    clock.freeze(at(2026, 6, 17, 20, 0))  # 18 June 04:00: yesterday's streak is gone
    h = client.get(f"/v1/members/{mid}/habits").json()
    assert (h["streak"], h["checked_in_today"]) == (0, False)
    entries = rows(
        world.db,
        "SELECT source_type, delta_available FROM ledger_entry WHERE member_id = :m "
        "AND source_type IN ('activity', 'action') ORDER BY id",
        m=mid,
    )
    assert [(e["source_type"], e["delta_available"]) for e in entries] == [
        ("activity", 5),
        ("activity", 5),
        ("activity", 10),
        ("action", 50),
        ("activity", 10),
        ("activity", 5),
        ("activity", 5),
    ]


def test_new_york_across_dst_changes(world: Any, client: Any, clock: Any) -> None:
    doc = demo_document()
    doc["timezone"] = "America/New_York"
    apply_document(world.db, doc)
    publish(world.db, {"checkins": {"day_start": "02:30"}})
    mid = new_member(client, "13800000002")
    # Spring forward, 8 March 2026: the 02:30 day start does not exist, the day starts at
    # the jump (03:00 EDT = 07:00 UTC). 7 March 23:00 EST, then 8 March 03:00 EDT, then
    # 9 March 02:29 EDT (still 8 March) and 02:30 (9 March).
    r = check_in(client, clock, mid, at(2026, 3, 8, 4, 0))
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-03-07", 1)
    assert r.json()["next_day_starts_at"] == "2026-03-08T07:00:00+00:00"
    assert_problem(check_in(client, clock, mid, at(2026, 3, 8, 6, 59)), 409, "already_checked_in")
    r = check_in(client, clock, mid, at(2026, 3, 8, 7, 0))
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-03-08", 2)
    assert_problem(check_in(client, clock, mid, at(2026, 3, 9, 6, 29)), 409, "already_checked_in")
    r = check_in(client, clock, mid, at(2026, 3, 9, 6, 30))
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-03-09", 3)
    # Fall back, 1 November 2026: 31 October 23:00 EDT, 1 November at the second 01:45
    # (EST) is still 1 November's first hours before 02:30 → 31 October, refused; 02:30
    # EST is 1 November.
    r = check_in(client, clock, mid, at(2026, 11, 1, 3, 0))  # 31 Oct 23:00 EDT
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-10-31", 1)
    assert_problem(check_in(client, clock, mid, at(2026, 11, 1, 6, 45)), 409, "already_checked_in")
    r = check_in(client, clock, mid, at(2026, 11, 1, 7, 30))  # 02:30 EST
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-11-01", 2)
    r = check_in(client, clock, mid, at(2026, 11, 2, 7, 30))
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-11-02", 3)


def test_travelling_member_keeps_the_programme_day(world: Any, client: Any, clock: Any) -> None:
    """The phone's zone changes; the day is the programme's (Shanghai, 04:00 start)."""
    publish(world.db, {"checkins": {"day_start": "04:00"}})
    mid = new_member(client, "13800000003")
    # 10 June 20:00 in Shanghai
    r = check_in(client, clock, mid, at(2026, 6, 10, 12, 0), "Asia/Shanghai")
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-06-10", 1)
    # flies to Los Angeles: 10 June 18:00 PDT on the phone is 11 June 09:00 in Shanghai:
    # a new programme day although the phone shows the same date: the streak goes on
    r = check_in(client, clock, mid, at(2026, 6, 11, 1, 0), "America/Los_Angeles")
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-06-11", 2)
    # 11 June 08:00 PDT: a new date on the phone, but still 11 June 23:00 in Shanghai
    r = check_in(client, clock, mid, at(2026, 6, 11, 15, 0), "America/Los_Angeles")
    assert_problem(r, 409, "already_checked_in")
    # 12 June 13:00 PDT (13 June 04:00 Shanghai): 12 June was skipped in Shanghai days
    r = check_in(client, clock, mid, at(2026, 6, 12, 20, 0), "America/Los_Angeles")
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-06-13", 1)
    # flies home: back in Shanghai the next morning continues the streak
    r = check_in(client, clock, mid, at(2026, 6, 14, 0, 30), "Asia/Shanghai")
    assert (r.json()["local_day"], r.json()["streak"]) == ("2026-06-14", 2)
    zones = rows(
        world.db, "SELECT client_tz FROM checkin WHERE member_id = :m ORDER BY local_day", m=mid
    )
    assert [z["client_tz"] for z in zones] == [
        "Asia/Shanghai",
        "America/Los_Angeles",
        "America/Los_Angeles",
        "Asia/Shanghai",
    ]


def test_refusals_write_nothing(world: Any, client: Any, clock: Any) -> None:
    mid = new_member(client, "13800000004")
    before = counts(world.db)
    publish(world.db, {"checkins": {"enabled": False}})
    before = counts(world.db)
    assert_problem(client.post(f"/v1/members/{mid}/checkins", json={}), 409, "checkins_disabled")
    publish(world.db, {})
    before = counts(world.db)
    r = client.post(f"/v1/members/{mid}/checkins", json={"client_tz": "Mars/Olympus"})
    assert_problem(r, 422, "activity_invalid", "client_tz")
    r = client.post(f"/v1/members/{mid}/checkins", json={"tz": "x"})
    assert_problem(r, 422)
    assert_problem(client.post("/v1/members/999999/checkins", json={}), 404)
    assert counts(world.db) == before
    # out of scope: a south-region key cannot check in an HQ member
    from tests.support import api_client

    with api_client(world.db, world.keys["south"]) as south:
        assert_problem(south.post(f"/v1/members/{mid}/checkins", json={}), 404)
    with api_client(world.db, world.keys["hq-read"]) as ro:
        assert_problem(ro.post(f"/v1/members/{mid}/checkins", json={}), 403)
    assert counts(world.db) == before


def test_idempotency_key_replays(world: Any, client: Any, clock: Any) -> None:
    publish(world.db, DOC)
    mid = new_member(client, "13800000005")
    clock.freeze(at(2026, 6, 10, 5, 0))
    h = {"Idempotency-Key": "ci-1"}
    a = client.post(f"/v1/members/{mid}/checkins", json={}, headers=h)
    b = client.post(f"/v1/members/{mid}/checkins", json={}, headers=h)
    assert (a.status_code, b.status_code) == (201, 201)
    assert b.headers["Idempotent-Replayed"] == "true"
    assert a.json() == b.json()
    assert len(rows(world.db, "SELECT id FROM checkin WHERE member_id = :m", m=mid)) == 1


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=12),
    zone=st.sampled_from(["Asia/Shanghai", "America/New_York"]),
)
def test_replaying_checkin_events_reproduces_streaks(
    world: Any, clock: Any, steps: list[int], zone: str
) -> None:
    """Check in at random gaps (hours) in either zone; the streaks recorded and emitted are
    exactly what replaying the emitted days gives."""
    from loyalist.habits.errors import AlreadyCheckedIn
    from loyalist.member import service as members
    from loyalist.member.schemas import MemberCreate

    doc = demo_document()
    doc["timezone"] = zone
    apply_document(world.db, doc)
    publish(world.db, {"checkins": {"day_start": "04:00"}})
    with world.db.transaction() as s:
        phone = f"139{len(rows(world.db, 'SELECT id FROM member')):08d}"
        mid = members.create(s, SYSTEM, MemberCreate(phone=phone)).member.id
    when = at(2026, 3, 1, 0, 0)
    for hours in steps:
        when += timedelta(hours=hours)
        clock.freeze(when)
        try:
            with world.db.transaction() as s:
                habits.check_in(s, SYSTEM, mid, CheckinIn())
        except AlreadyCheckedIn:
            pass
    with world.db.transaction() as s:
        evs = s.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.type == "checkin.recorded", OutboxEvent.member_id == mid)
            .order_by(OutboxEvent.id)
        ).all()
        emitted = [(date.fromisoformat(e.payload["local_day"]), e.payload["streak"]) for e in evs]
        assert habits.replayed_streaks(s, mid) == emitted
    assert domain.streaks(d for d, _ in emitted) == emitted
    assert len(emitted) == len({d for d, _ in emitted})


@pytest.mark.parametrize("activity", ["review", "share"])
def test_activity_caps_and_repeats(world: Any, client: Any, clock: Any, activity: str) -> None:
    publish(world.db, {"activities": {activity: {"points": 20, "per_day": 2, "lifetime": 3}}})
    mid = new_member(client, "13800000006")
    clock.freeze(at(2026, 6, 10, 2, 0))
    url = f"/v1/members/{mid}/activities"
    got = [client.post(url, json={"activity": activity, "ref": f"r{i}"}) for i in range(3)]
    assert [(r.status_code, r.json()["points"], r.json()["capped"]) for r in got] == [
        (201, 20, None),
        (201, 20, None),
        (201, 0, "day"),
    ]
    before = counts(world.db)
    again = client.post(url, json={"activity": activity, "ref": "r0"})
    assert (again.status_code, again.json()) == (200, got[0].json())
    assert counts(world.db) == before
    clock.freeze(at(2026, 6, 11, 2, 0))
    more = [client.post(url, json={"activity": activity, "ref": f"s{i}"}) for i in range(2)]
    assert [(r.json()["points"], r.json()["capped"]) for r in more] == [(20, None), (0, "lifetime")]
    assert balance(client, mid) == 60
    assert_problem(client.post(url, json={"activity": activity}), 422, "activity_invalid", "ref")
    assert_problem(client.post(url, json={"activity": "survey", "ref": "x"}), 409)


def test_profile_birthday_and_signup(world: Any, client: Any, clock: Any) -> None:
    import loyalist.habits.handlers  # noqa: F401  (registers the "habits" consumer)
    from loyalist.events import consumers

    clock.freeze(at(2026, 6, 10, 1, 0))
    early = new_member(client, "13800000009")  # joined before sign-up points existed
    clock.freeze(at(2026, 6, 10, 2, 0))
    publish(
        world.db,
        {
            "activities": {
                "signup": {"points": 100, "lifetime": 1},
                "profile": {"points": 30},
                "birthday": {"points": 88},
            }
        },
    )
    mid = new_member(client, "13800000007", name="李雷", birthday="1990-06-02")
    other = new_member(client, "13800000008", birthday="1990-07-02")
    while consumers.run_pending(world.db):
        pass
    assert (balance(client, mid), balance(client, other), balance(client, early)) == (100, 100, 0)
    url = f"/v1/members/{mid}/activities"
    r = client.post(url, json={"activity": "profile"})
    assert_problem(r, 409, "activity_not_eligible")
    assert (
        client.patch(f"/v1/members/{mid}", json={"gender": "male", "city": "上海"}).status_code
        == 200
    )
    r = client.post(url, json={"activity": "profile"})
    assert (r.status_code, r.json()["points"], r.json()["ref"]) == (201, 30, "profile")
    assert client.post(url, json={"activity": "profile"}).status_code == 200
    r = client.post(url, json={"activity": "birthday"})
    assert (r.status_code, r.json()["points"], r.json()["ref"]) == (201, 88, "2026")
    assert client.post(url, json={"activity": "birthday"}).status_code == 200
    assert_problem(
        client.post(f"/v1/members/{other}/activities", json={"activity": "birthday"}),
        409,
        "activity_not_eligible",
    )
    assert balance(client, mid) == 100 + 30 + 88
