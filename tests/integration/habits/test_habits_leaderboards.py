"""Leaderboards: scores from the stream per period and scope, deterministic ties, the next
reset in the API, and a reset with the server down across the boundary that fires once
after restart and pays the top ranks once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.habits.habits_support import publish
from tests.itest import new_member, rows
from tests.support import api_client, order_payload

from loyalist import bootstrap
from loyalist.events import consumers
from loyalist.jobs import queue, scheduler

DOC: dict[str, Any] = {
    "leaderboards": [
        {
            "code": "weekly-points",
            "name": {"zh_CN": "本周积分榜", "en": "Points this week"},
            "metric": "points",
            "period": "week",
            "size": 3,
            "rewards": [
                {
                    "rank_from": 1,
                    "rank_to": 1,
                    "actions": [
                        {"action": "award_points", "params": {"points": 500, "reason": "no. 1"}}
                    ],
                },
                {
                    "rank_from": 2,
                    "rank_to": 3,
                    "actions": [
                        {"action": "award_points", "params": {"points": 100, "reason": "top 3"}}
                    ],
                },
            ],
        },
        {
            "code": "south-streaks",
            "name": {"zh_CN": "华南连续签到", "en": "South streaks"},
            "metric": "streak",
            "period": "month",
            "scope": "south",
        },
    ],
    "checkins": {"day_start": "04:00"},
}


def drain(db: Any) -> None:
    while consumers.run_pending(db):
        pass


def buy(client: Any, ext: str, mid: int, paid: int) -> None:
    r = client.post(
        "/v1/orders",
        json=order_payload(ext, mid, paid=paid, occurred_at="2026-06-10T11:00:00+08:00"),
    )
    assert r.status_code == 201, r.text


def test_standings_ties_scope_and_next_reset(world: Any, client: Any, clock: Any) -> None:
    publish(world.db, DOC)
    a, b, c, d = (new_member(client, f"1370000000{i}") for i in range(4))
    south = new_member(client, "13700000009", home_store="sz1")
    buy(client, "x1", c, 2000)  # c reaches 20 first
    clock.advance(timedelta(minutes=1))
    buy(client, "x2", b, 2000)  # b ties with c, later
    buy(client, "x3", a, 5000)
    buy(client, "x4", d, 1000)
    assert client.post(f"/v1/members/{south}/checkins", json={}).status_code == 201
    assert client.post(f"/v1/members/{a}/checkins", json={}).status_code == 201
    drain(world.db)
    boards = client.get("/v1/leaderboards").json()["items"]
    week = boards[0]
    assert (week["code"], week["period_start"], week["period_end"]) == (
        "weekly-points",
        "2026-06-08",
        "2026-06-14",
    )
    assert week["next_reset_at"] == "2026-06-14T16:00:00+00:00"  # Monday 00:00 Shanghai
    assert [(s["rank"], s["member_id"], s["score"]) for s in week["standings"]] == [
        (1, a, 100),  # Wednesday is the demo programme's double-points member day
        (2, c, 40),
        (3, b, 40),
    ]
    streaks = boards[1]
    assert streaks["next_reset_at"] == "2026-06-30T16:00:00+00:00"  # 1 July Shanghai
    assert [(s["member_id"], s["score"]) for s in streaks["standings"]] == [(south, 1)]
    # an east key does not see the south board; a south key sees it
    with api_client(world.db, world.keys["east"]) as east:
        assert [x["code"] for x in east.get("/v1/leaderboards").json()["items"]] == []
        assert east.get("/v1/leaderboards/south-streaks").status_code == 404
    with api_client(world.db, world.keys["south"]) as sk:
        assert [x["code"] for x in sk.get("/v1/leaderboards").json()["items"]] == ["south-streaks"]
    assert client.get("/v1/leaderboards/nope").status_code == 404
    assert (
        client.get("/v1/leaderboards/weekly-points", params={"period": "2027-01-01"}).json()["code"]
        == "period_invalid"
    )
    assert client.get("/v1/leaderboards/weekly-points", params={"x": "1"}).status_code == 422


def test_reset_with_the_server_down_fires_once_after_restart(
    world: Any, client: Any, clock: Any
) -> None:
    bootstrap.configure()
    publish(world.db, DOC)
    a, b = new_member(client, "13600000001"), new_member(client, "13600000002")
    buy(client, "y1", a, 3000)
    buy(client, "y2", b, 1000)
    drain(world.db)
    scheduler.enqueue_due(world.db)
    queue.run_until_empty(world.db)
    assert rows(world.db, "SELECT id FROM leaderboard_period") == []
    # the server is down from Wednesday 10 June until Thursday 25 June: two weekly
    # boundaries (15 and 22 June) pass while nothing runs
    clock.freeze(datetime(2026, 6, 25, 2, 0, tzinfo=UTC))
    for _ in range(3):  # restarted: the worker ticks a few times
        scheduler.enqueue_due(world.db)
        queue.run_until_empty(world.db)
        drain(world.db)
        clock.advance(timedelta(minutes=10))
    closed = rows(
        world.db,
        "SELECT board, period_start, period_end, rewarded FROM leaderboard_period "
        "ORDER BY board, period_start",
    )
    assert [(r["board"], str(r["period_start"]), r["rewarded"]) for r in closed] == [
        ("weekly-points", "2026-06-08", 2),
        ("weekly-points", "2026-06-15", 0),
    ]
    paid = rows(
        world.db,
        "SELECT member_id, delta_available FROM ledger_entry WHERE source_type = 'action' "
        "ORDER BY member_id",
    )
    assert [(p["member_id"], p["delta_available"]) for p in paid] == [(a, 500), (b, 100)]
    assert len(rows(world.db, "SELECT id FROM outbox_event WHERE type = 'leaderboard.closed'")) == 2
    archive = client.get("/v1/leaderboards/weekly-points/archive").json()["items"]
    assert [x["period_start"] for x in archive] == ["2026-06-15", "2026-06-08"]
    assert [(s["rank"], s["member_id"], s["score"]) for s in archive[1]["standings"]] == [
        (1, a, 60),
        (2, b, 20),
    ]
    old = client.get("/v1/leaderboards/weekly-points", params={"period": "2026-06-10"}).json()
    assert (old["closed"], old["period_start"]) == (True, "2026-06-08")
    # the rewards themselves count on the current week's board (they are points earned)
    now = client.get("/v1/leaderboards/weekly-points").json()
    assert (now["period_start"], [s["score"] for s in now["standings"]]) == (
        "2026-06-22",
        [500, 100],
    )
    # and running the close again, much later in the same week, changes nothing
    from loyalist.habits import service as habits

    clock.advance(timedelta(days=2))
    assert world.db.run(habits.close_periods) == 0
