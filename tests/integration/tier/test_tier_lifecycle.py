"""Tiers: instant upgrades, periodic re-evaluation with downgrade only after N consecutive
periods below, tier history, and progress on GET /v1/members/{id}."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.itest import apply_document, demo_document, new_member, rows
from tests.support import order_payload

from loyalist.jobs import service as jobs

MONDAY = "2026-06-08T10:00:00+08:00"


def buy(client: Any, mid: int, ext: str, paid: int, at: str = MONDAY) -> dict[str, Any]:
    r = client.post("/v1/orders", json=order_payload(ext, mid, paid=paid, occurred_at=at))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def tier(client: Any, mid: int) -> dict[str, Any]:
    t: dict[str, Any] = client.get(f"/v1/members/{mid}").json()["tier"]
    return t


def history(client: Any, mid: int) -> list[tuple[str | None, str, str, str | None]]:
    items = client.get(f"/v1/members/{mid}/tier-history").json()["items"]
    return [(h["from"], h["to"], h["reason"], h["period"]) for h in items]


def run_tiers(db: Any, clock: Any, at: datetime) -> jobs.JobReport:
    clock.freeze(at)
    return jobs.reevaluate_tiers(db)


def test_instant_upgrade_when_a_threshold_is_crossed(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    buy(client, mid, "a", 99_999)
    assert tier(client, mid)["code"] == "base"
    buy(client, mid, "b", 1)  # exactly silver's threshold (¥1,000)
    t = tier(client, mid)
    assert (t["code"], t["name"], t["value"]) == ("silver", "银卡会员", 100_000)
    assert t["since"] == "2026-06-10T04:00:00+00:00"
    # several thresholds at once: one change, straight to the highest
    buy(client, mid, "c", 700_000)
    assert tier(client, mid)["code"] == "platinum"
    assert history(client, mid) == [
        (None, "base", "join", None),
        ("base", "silver", "upgrade", None),
        ("silver", "platinum", "upgrade", None),
    ]
    changes = client.get("/v1/events", params={"type": "tier.changed"}).json()["items"]
    assert [(e["data"]["from"], e["data"]["to"], e["data"]["value"]) for e in changes] == [
        ("base", "silver", 100_000),
        ("silver", "platinum", 800_000),
    ]


def test_progress_to_the_next_tier_and_to_keep_the_current_one(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    t = tier(client, mid)
    assert t["next"] == {"code": "silver", "name": "银卡会员", "missing": 100_000}
    assert t["keep"] == {"threshold": 0, "missing": 0}
    buy(client, mid, "gold", 300_000)
    o = buy(client, mid, "more", 50_000)
    t = tier(client, mid)
    assert (t["code"], t["metric"], t["value"]) == ("gold", "spend", 350_000)
    assert t["next"] == {"code": "platinum", "name": "铂金会员", "missing": 450_000}
    assert t["keep"] == {"threshold": 300_000, "missing": 0}
    # a return lowers the metric: now something is missing to keep gold
    client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "r1", "full": True})
    client.post(f"/v1/orders/{o['id'] - 1}/returns", json={"return_id": "r2", "full": True})
    t = tier(client, mid)
    assert (t["code"], t["value"]) == ("gold", 0)
    assert t["keep"] == {"threshold": 300_000, "missing": 300_000}
    assert t["next"]["missing"] == 800_000
    # at the top there is no next tier
    buy(client, mid, "top", 2_000_000)
    t = tier(client, mid)
    assert (t["code"], t["next"], t["keep"]) == (
        "black",
        None,
        {"threshold": 2_000_000, "missing": 0},
    )


def test_points_on_the_profile(world: Any, client: Any, clock: Any) -> None:
    mid = new_member(client, "13800000001")
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 300, "reason": "gift"})
    buy(client, mid, "p", 20_000)
    clock.freeze(datetime(2027, 12, 10, 4, 0, tzinfo=UTC))  # 21 days before the lots expire
    jobs.activate_pending(world.db)
    buy(client, mid, "late", 10_000, "2027-12-10T11:00:00+08:00")
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert p == {
        "available": 500,
        "pending": 100,
        "debt": 0,
        "lifetime_earned": 300,  # adjustments are not "earned"
        "expiring_30d": 500,
        "expiring": [{"expires_at": "2027-12-31T16:00:00+00:00", "points": 500}],
    }


def test_downgrade_only_after_two_consecutive_periods_below(
    world: Any, client: Any, clock: Any
) -> None:
    db = world.db
    mid = new_member(client, "13800000001")
    o = buy(client, mid, "gold", 300_000)
    assert tier(client, mid)["code"] == "gold"
    client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "all", "full": True})
    assert tier(client, mid)["code"] == "gold"  # a return never downgrades at once

    # Q2 ends below gold: first period below, the tier is held
    report = run_tiers(db, clock, datetime(2026, 7, 1, 1, 0, tzinfo=UTC))
    assert (report.period, report.members, report.changes) == ("2026-Q2", 1, 0)
    assert tier(client, mid)["code"] == "gold"
    (m,) = rows(db, "SELECT tier_periods_below, tier_evaluated_period FROM member")
    assert m == {"tier_periods_below": 1, "tier_evaluated_period": "2026-Q2"}
    # running again for the same period changes nothing
    again = run_tiers(db, clock, datetime(2026, 7, 2, 1, 0, tzinfo=UTC))
    assert again.notes == ["period 2026-Q2 already evaluated"]
    assert rows(db, "SELECT tier_periods_below FROM member") == [{"tier_periods_below": 1}]

    # Q3 ends below too: second period below, down to the tier the value qualifies for
    report = run_tiers(db, clock, datetime(2026, 10, 1, 1, 0, tzinfo=UTC))
    assert (report.period, report.changes) == ("2026-Q3", 1)
    t = tier(client, mid)
    assert t["code"] == "base"
    assert t["since"] == "2026-09-30T16:00:00+00:00"  # as of the end of Q3 in Shanghai
    assert history(client, mid) == [
        (None, "base", "join", None),
        ("base", "gold", "upgrade", None),
        ("gold", "base", "downgrade", "2026-Q3"),
    ]
    ev = client.get("/v1/events", params={"type": "tier.changed"}).json()["items"][-1]["data"]
    assert (ev["from"], ev["to"], ev["reason"], ev["period"]) == (
        "gold",
        "base",
        "downgrade",
        "2026-Q3",
    )
    done = rows(db, "SELECT job, period, status FROM job_run ORDER BY id")
    assert done == [
        {"job": "tiers", "period": "2026-Q2", "status": "done"},
        {"job": "tiers", "period": "2026-Q3", "status": "done"},
    ]


def test_a_period_at_or_above_the_threshold_resets_the_count(
    world: Any, client: Any, clock: Any
) -> None:
    db = world.db
    mid = new_member(client, "13800000001")
    o = buy(client, mid, "gold", 300_000)
    client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "all", "full": True})
    run_tiers(db, clock, datetime(2026, 7, 1, 1, 0, tzinfo=UTC))  # Q2: below (1)
    clock.freeze(datetime(2026, 9, 1, 4, 0, tzinfo=UTC))
    buy(client, mid, "back", 300_000, "2026-09-01T10:00:00+08:00")  # gold again in Q3
    run_tiers(db, clock, datetime(2026, 10, 1, 1, 0, tzinfo=UTC))  # Q3: keep, count reset
    assert rows(db, "SELECT tier_periods_below FROM member") == [{"tier_periods_below": 0}]
    # the Q3 order leaves the 12-month window only in September 2027: Q4..Q2 keep gold
    for at in (datetime(2027, 1, 1, 1, tzinfo=UTC), datetime(2027, 7, 1, 1, tzinfo=UTC)):
        run_tiers(db, clock, at)
        assert tier(client, mid)["code"] == "gold"
    run_tiers(db, clock, datetime(2027, 10, 1, 1, tzinfo=UTC))  # 2027-Q3: window empty (1)
    assert tier(client, mid)["code"] == "gold"
    run_tiers(db, clock, datetime(2028, 1, 1, 1, tzinfo=UTC))  # 2027-Q4: below again (2)
    assert tier(client, mid)["code"] == "base"
    assert [h[2:] for h in history(client, mid)][-1] == ("downgrade", "2027-Q4")


def test_a_downgrade_never_goes_below_what_the_member_qualifies_for_today(
    world: Any, client: Any, clock: Any
) -> None:
    """The period is judged by its own value, but spend since it closed still counts: a
    member who has re-qualified by the time the job runs is not sent down."""
    db = world.db
    doc = demo_document()
    doc["tiers"]["downgrade_after_periods"] = 1
    apply_document(db, doc)
    mid = new_member(client, "13800000001")
    o = buy(client, mid, "gold", 300_000)
    client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "all", "full": True})
    other = new_member(client, "13800000002")
    p = buy(client, other, "plat", 800_000)
    client.post(f"/v1/orders/{p['id']}/returns", json={"return_id": "all2", "full": True})
    clock.freeze(datetime(2026, 7, 1, 1, 0, tzinfo=UTC))
    buy(client, mid, "july", 300_000, "2026-07-01T08:30:00+08:00")  # Q3 in Shanghai
    buy(client, other, "july2", 100_000, "2026-07-01T08:30:00+08:00")
    report = jobs.reevaluate_tiers(db)
    assert (report.period, report.members, report.changes) == ("2026-Q2", 2, 1)
    # Q2 ended at 0 for both; today one qualifies for gold again (kept), the other for silver
    assert tier(client, mid)["code"] == "gold"
    assert history(client, mid)[-1] == ("base", "gold", "upgrade", None)
    assert tier(client, other)["code"] == "silver"
    assert history(client, other)[-1] == ("platinum", "silver", "downgrade", "2026-Q2")
    assert rows(db, "SELECT tier_periods_below FROM member ORDER BY id") == [
        {"tier_periods_below": 0},
        {"tier_periods_below": 0},
    ]


def test_re_evaluation_upgrades_after_the_thresholds_are_lowered(
    world: Any, client: Any, clock: Any
) -> None:
    db = world.db
    mid = new_member(client, "13800000001")
    buy(client, mid, "mid", 50_000)
    assert tier(client, mid)["code"] == "base"
    doc = demo_document()
    doc["tiers"]["levels"][1]["threshold"] = 40_000
    apply_document(db, doc)
    run_tiers(db, clock, datetime(2026, 7, 1, 1, 0, tzinfo=UTC))
    assert tier(client, mid)["code"] == "silver"
    items = client.get(f"/v1/members/{mid}/tier-history").json()["items"]
    assert (items[-1]["reason"], items[-1]["period"], items[-1]["programme_version"]) == (
        "upgrade",
        "2026-Q2",
        2,
    )


def test_orders_and_active_days_metrics_follow_the_local_calendar(world: Any, client: Any) -> None:
    doc = demo_document()
    doc["tiers"]["metric"] = "active_days"
    for i, level in enumerate(doc["tiers"]["levels"]):
        level["threshold"] = [0, 2, 3, 10, 20][i]
    apply_document(world.db, doc)
    mid = new_member(client, "13800000001")
    # 2026-06-08 23:30 and 2026-06-08 16:00Z (= 06-09 00:00 Shanghai): two local days
    buy(client, mid, "d1", 100, "2026-06-08T23:30:00+08:00")
    assert tier(client, mid)["value"] == 1
    buy(client, mid, "d1b", 100, "2026-06-08T15:59:00Z")  # still 06-08 in Shanghai
    assert (tier(client, mid)["value"], tier(client, mid)["code"]) == (1, "base")
    buy(client, mid, "d2", 100, "2026-06-08T16:00:00Z")
    assert (tier(client, mid)["value"], tier(client, mid)["code"]) == (2, "silver")

    doc["tiers"]["metric"] = "orders"
    apply_document(world.db, doc)
    other = new_member(client, "13800000002")
    for i in range(3):
        buy(client, other, f"o{i}", 100)
    t = tier(client, other)
    assert (t["metric"], t["value"], t["code"]) == ("orders", 3, "gold")
