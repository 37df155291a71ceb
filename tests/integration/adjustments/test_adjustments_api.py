"""POST /v1/members/{id}/adjustments: staff corrections with a reason, both signs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.itest import assert_problem, counts, new_member, rows
from tests.support import api_client, order_payload

from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import PointsLot


def adjust(client: Any, mid: int, points: int, reason: str = "goodwill", **kw: Any) -> Any:
    return client.post(
        f"/v1/members/{mid}/adjustments", json={"points": points, "reason": reason, **kw}
    )


def balance(client: Any, mid: int) -> tuple[int, int, int, int]:
    p = client.get(f"/v1/members/{mid}").json()["points"]
    return p["available"], p["pending"], p["debt"], p["lifetime_earned"]


def lots(db: Database, mid: int) -> list[tuple[int, int, str, str | None]]:
    with db.transaction() as s:
        return [
            (
                lot.points,
                lot.remaining,
                lot.status,
                lot.expires_at.isoformat() if lot.expires_at else None,
            )
            for lot in s.scalars(
                select(PointsLot).where(PointsLot.member_id == mid).order_by(PointsLot.id)
            )
        ]


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    assert problems == []


def event_types(db: Database, mid: int) -> list[str]:
    return [
        r["type"]
        for r in rows(db, "SELECT type FROM outbox_event WHERE member_id = :m ORDER BY id", m=mid)
    ]


def test_positive_adjustment_is_an_available_lot_with_the_programme_expiry(
    world: Any, client: Any
) -> None:
    mid = new_member(client, "13800000001")
    r = adjust(client, mid, 250, "compensation for a late delivery")
    assert r.status_code == 201, r.text
    e = r.json()
    assert (e["kind"], e["available"], e["pending"], e["debt"]) == ("adjust", 250, 0, 0)
    assert e["reason"] == "compensation for a late delivery"
    assert e["actor"].startswith("apikey:lk_")
    assert e["source"] == {"type": "staff", "id": None}
    assert e["programme_version"] == 1
    assert e["details"] is None
    assert client.get(f"/v1/members/{mid}/ledger").json()["items"][0] == e
    # earned 2026-06-10 under end_of_year/1: valid to the end of 2027 in Shanghai
    assert lots(world.db, mid) == [(250, 250, "available", "2027-12-31T16:00:00+00:00")]
    # a correction is not "earned": lifetime (and tier metrics) are untouched
    assert balance(client, mid) == (250, 0, 0, 0)
    assert event_types(world.db, mid) == ["member.created", "points.earned", "points.adjusted"]
    verify_clean(world.db)


def test_negative_adjustment_debits_soonest_expiring_first(
    world: Any, client: Any, clock: Any
) -> None:
    mid = new_member(client, "13800000001")
    old = client.post(
        "/v1/orders",
        json=order_payload("old", mid, paid=40_000, occurred_at="2025-06-02T10:00:00+08:00"),
    )
    assert old.json()["points"]["earned"] == 400  # available, expires end of 2026
    assert adjust(client, mid, 1000).status_code == 201  # expires end of 2027
    r = adjust(client, mid, -600, "duplicate credit reversed")
    assert r.status_code == 201, r.text
    e = r.json()
    assert (e["kind"], e["available"], e["reason"]) == ("adjust", -600, "duplicate credit reversed")
    lot_ids = [
        x["id"] for x in rows(world.db, "SELECT id FROM points_lot WHERE member_id = :m", m=mid)
    ]
    assert e["details"]["lots"] == [[min(lot_ids), 400], [max(lot_ids), 200]]
    assert lots(world.db, mid) == [
        (400, 0, "closed", "2026-12-31T16:00:00+00:00"),
        (1000, 800, "available", "2027-12-31T16:00:00+00:00"),
    ]
    assert balance(client, mid) == (800, 0, 0, 400)
    assert event_types(world.db, mid)[-1] == "points.adjusted"
    verify_clean(world.db)


def test_negative_adjustment_cannot_take_pending_or_missing_points(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    o = client.post(
        "/v1/orders",
        json=order_payload("new", mid, paid=50_000, occurred_at="2026-06-08T10:00:00+08:00"),
    )
    assert o.json()["points"]["status"] == "pending"
    adjust(client, mid, 100)
    before = counts(world.db)
    body = assert_problem(adjust(client, mid, -101), 409, "insufficient_points")
    assert (body["available"], body["required"]) == (100, 101)
    assert counts(world.db) == before
    assert balance(client, mid) == (100, 500, 0, 500)
    assert adjust(client, mid, -100).status_code == 201
    assert balance(client, mid) == (0, 500, 0, 500)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"points": 100}, "reason"),
        ({"points": 100, "reason": ""}, "reason"),
        ({"points": 100, "reason": "ab"}, "reason"),
        ({"points": 100, "reason": "x" * 501}, "reason"),
        ({"reason": "no points"}, "points"),
        ({"points": 0, "reason": "nothing"}, "points"),
        ({"points": "ten", "reason": "wrong type"}, "points"),
        ({"points": 1.5, "reason": "fractional"}, "points"),
        ({"points": 10_000_001, "reason": "absurd"}, "points"),
        ({"points": -10_000_001, "reason": "absurd"}, "points"),
        ({"points": 10, "reason": "extra", "expires_at": "2030-01-01"}, "expires_at"),
    ],
)
def test_invalid_adjustments_are_422_on_the_field_and_write_nothing(
    world: Any, client: Any, payload: dict[str, Any], field: str
) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db)
    r = client.post(f"/v1/members/{mid}/adjustments", json=payload)
    assert_problem(r, 422, field=field)
    assert counts(world.db) == before


def test_zero_points_has_a_stable_code(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    assert_problem(adjust(client, mid, 0, "nothing"), 422, "invalid_adjustment", "points")


def test_adjustment_scope_and_read_only_keys(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    before = counts(world.db)
    with api_client(world.db, world.keys["south"]) as south:
        assert_problem(adjust(south, mid, 100), 404, "member_not_found")
    with api_client(world.db, world.keys["hq-read"]) as ro:
        assert_problem(adjust(ro, mid, 100), 403, "forbidden")
    assert_problem(adjust(client, 999_999, 100), 404, "member_not_found")
    assert counts(world.db) == before
    with api_client(world.db, world.keys["east"]) as east:
        assert adjust(east, mid, 100).status_code == 201
    with api_client(world.db, world.keys["sh1"]) as sh1:
        assert adjust(sh1, mid, -40).status_code == 201
    assert balance(client, mid) == (60, 0, 0, 0)


def test_adjustment_with_an_idempotency_key_applies_once(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    h = {"Idempotency-Key": "adj-2026-06-10-001"}
    body = {"points": 300, "reason": "store opening gift"}
    first = client.post(f"/v1/members/{mid}/adjustments", json=body, headers=h)
    again = client.post(f"/v1/members/{mid}/adjustments", json=body, headers=h)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    before = counts(world.db)
    other = client.post(f"/v1/members/{mid}/adjustments", json={**body, "points": 301}, headers=h)
    assert_problem(other, 422, "idempotency_key_reused")
    assert counts(world.db) == before
    assert balance(client, mid) == (300, 0, 0, 0)
    # without a key, the same body is a second correction (staff meant it twice)
    assert client.post(f"/v1/members/{mid}/adjustments", json=body).status_code == 201
    assert balance(client, mid) == (600, 0, 0, 0)


def test_a_negative_adjustment_never_spends_an_expired_lot(
    world: Any, client: Any, clock: Any
) -> None:
    """Between the expiry instant and the expiry job, the lot is already unspendable."""
    mid = new_member(client, "13800000001")
    assert adjust(client, mid, 100).status_code == 201  # expires 2027-12-31T16:00Z
    clock.advance(timedelta(days=600))  # 2028-01-31: past expiry, no job has run
    before = counts(world.db, ["redemption", "reward_usage"])
    assert_problem(adjust(client, mid, -1), 409, "insufficient_points")
    assert counts(world.db, ["redemption", "reward_usage"]) == before
    # the failed attempt rolled back, so the expiry is still the job's to record
    assert lots(world.db, mid) == [(100, 100, "available", "2027-12-31T16:00:00+00:00")]
    verify_clean(world.db)
