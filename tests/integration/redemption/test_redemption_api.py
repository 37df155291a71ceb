"""POST /v1/redemptions and /cancel: points-only and cash + points, every refusal a distinct
409 that writes nothing, and cancellation back to the very lots (and expiry) the points
came from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from tests.itest import apply_document, assert_problem, counts, demo_document, new_member, rows
from tests.support import api_client, order_payload, recorded_statements

from loyalist.jobs import service as jobs
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import PointsLot

# clock fixture: 2026-06-10T04:00Z (12:00 Wednesday in Shanghai)
REWARDS = [
    {"code": "mug", "name": "Mug", "points": 300},
    {"code": "beans-cash", "name": "Beans (points + cash)", "points": 200, "cash_minor": 1990},
    {"code": "scarce", "name": "Only one", "points": 10, "stock": 1},
    {"code": "limited", "name": "Two per member", "points": 10, "per_member_limit": 2},
    {"code": "gold-only", "name": "Gold tier only", "points": 10, "min_tier": "gold"},
    {
        "code": "later",
        "name": "Not yet",
        "points": 10,
        "valid_from": "2026-07-01T00:00:00+08:00",
    },
    {
        "code": "over",
        "name": "Ended",
        "points": 10,
        "valid_until": "2026-06-01T00:00:00+08:00",
    },
    {
        "code": "window",
        "name": "June only",
        "points": 10,
        "valid_from": "2026-06-01T00:00:00+08:00",
        "valid_until": "2026-07-01T00:00:00+08:00",
    },
]


@pytest.fixture
def rewards(world: Any) -> Any:
    """The demo programme with rolling one-month expiry and the test catalogue."""
    doc = demo_document()
    doc["points"]["expiry"] = {"kind": "rolling_months", "months": 1}
    doc["rewards"] = REWARDS
    assert apply_document(world.db, doc) == 2
    return world


def give(client: Any, mid: int, points: int) -> int:
    r = client.post(f"/v1/members/{mid}/adjustments", json={"points": points, "reason": "setup"})
    assert r.status_code == 201, r.text
    entry_id: int = r.json()["id"]
    return entry_id


def lots(db: Database, mid: int) -> dict[int, tuple[int, int, str, str | None]]:
    """lot id → (points, remaining, status, expires_at)"""
    with db.transaction() as s:
        return {
            lot.id: (
                lot.points,
                lot.remaining,
                lot.status,
                lot.expires_at.isoformat() if lot.expires_at else None,
            )
            for lot in s.scalars(
                select(PointsLot).where(PointsLot.member_id == mid).order_by(PointsLot.id)
            )
        }


def balance(client: Any, mid: int) -> tuple[int, int, int]:
    p = client.get(f"/v1/members/{mid}").json()["points"]
    return p["available"], p["pending"], p["debt"]


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    assert problems == []


def stock(db: Database, code: str) -> int | None:
    (row,) = rows(db, "SELECT stock_remaining FROM reward WHERE code = :c", c=code)
    value: int | None = row["stock_remaining"]
    return value


def test_points_only_redemption_spends_soonest_expiring_lots_first(
    rewards: Any, client: Any, clock: Any
) -> None:
    db = rewards.db
    mid = new_member(client, "13800000001")
    give(client, mid, 200)  # lot A: valid through 2026-07-10 (Shanghai)
    clock.advance(timedelta(days=5))
    give(client, mid, 500)  # lot B: valid through 2026-07-15
    lot_a, lot_b = sorted(lots(db, mid))
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in ("member_id", "reward", "quantity", "points", "cash_minor")} == {
        "member_id": mid,
        "reward": "mug",
        "quantity": 1,
        "points": 300,
        "cash_minor": 0,
    }
    assert (body["status"], body["currency"], body["cancelled_at"]) == ("completed", "CNY", None)
    assert client.get(f"/v1/redemptions/{body['id']}").json() == body
    assert balance(client, mid) == (400, 0, 0)
    entry = client.get(f"/v1/members/{mid}/ledger").json()["items"][0]
    assert (entry["id"], entry["kind"], entry["available"]) == (body["entry_id"], "redeem", -300)
    assert entry["source"] == {"type": "redemption", "id": str(body["id"])}
    assert entry["programme_version"] == 2
    assert entry["details"]["lots"] == [[lot_a, 200], [lot_b, 100]]
    assert lots(db, mid) == {
        lot_a: (200, 0, "closed", "2026-07-10T16:00:00+00:00"),
        lot_b: (500, 400, "available", "2026-07-15T16:00:00+00:00"),
    }
    verify_clean(db)


def test_cash_plus_points_charges_both_per_unit(rewards: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    give(client, mid, 1000)
    r = client.post(
        "/v1/redemptions", json={"member_id": mid, "reward": "beans-cash", "quantity": 3}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["points"], r.json()["cash_minor"], r.json()["quantity"]) == (600, 5970, 3)
    assert balance(client, mid) == (400, 0, 0)
    listed = client.get("/v1/redemptions", params={"member_id": mid}).json()["items"]
    assert [x["id"] for x in listed] == [r.json()["id"]]


def test_redemption_in_a_store_is_recorded_there(rewards: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    give(client, mid, 1000)
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug", "store": "sh2"})
    assert r.status_code == 201, r.text
    (row,) = rows(
        rewards.db,
        "SELECT r.org_path, u.code FROM redemption r JOIN org_unit u ON u.id = r.store_id",
    )
    assert row["code"] == "sh2"
    # the sh2 key sees it, the sh1 key does not
    with api_client(rewards.db, rewards.keys["sh2"]) as sh2:
        assert sh2.get(f"/v1/redemptions/{r.json()['id']}").status_code == 200
    with api_client(rewards.db, rewards.keys["sh1"]) as sh1:
        assert_problem(sh1.get(f"/v1/redemptions/{r.json()['id']}"), 404, "redemption_not_found")


@pytest.mark.parametrize(
    ("reward", "quantity", "points", "code"),
    [
        ("mug", 1, 299, "insufficient_points"),
        ("mug", 2, 599, "insufficient_points"),
        ("limited", 3, 1000, "limit_reached"),
        ("gold-only", 1, 1000, "tier_not_allowed"),
        ("later", 1, 1000, "reward_not_available"),
        ("over", 1, 1000, "reward_not_available"),
        ("scarce", 2, 1000, "out_of_stock"),
        ("no-such-reward", 1, 1000, "reward_not_found"),
    ],
)
def test_refusals_have_distinct_codes_and_write_nothing(
    rewards: Any, client: Any, reward: str, quantity: int, points: int, code: str
) -> None:
    mid = new_member(client, "13800000001")
    give(client, mid, points)
    before = counts(rewards.db)
    stocks = rows(rewards.db, "SELECT code, stock_remaining FROM reward ORDER BY code")
    r = client.post(
        "/v1/redemptions",
        json={"member_id": mid, "reward": reward, "quantity": quantity},
        headers={"Idempotency-Key": f"refused-{reward}"},
    )
    status = 404 if code == "reward_not_found" else 409
    body = assert_problem(r, status, code)
    if code == "insufficient_points":
        assert (body["available"], body["required"]) == (points, 300 * quantity)
    assert counts(rewards.db) == before
    assert rows(rewards.db, "SELECT code, stock_remaining FROM reward ORDER BY code") == stocks
    assert balance(client, mid) == (points, 0, 0)


def test_each_limit_is_enforced_after_it_is_used_up(rewards: Any, client: Any) -> None:
    a = new_member(client, "13800000001")
    b = new_member(client, "13800000002")
    give(client, a, 1000)
    give(client, b, 1000)
    # per-member limit 2: two singles, then the third is refused; another member is unaffected
    for _ in range(2):
        assert client.post("/v1/redemptions", json={"member_id": a, "reward": "limited"}).is_success
    before = counts(rewards.db)
    refused = client.post("/v1/redemptions", json={"member_id": a, "reward": "limited"})
    assert_problem(refused, 409, "limit_reached")
    assert refused.json()["limit"] == 2
    assert counts(rewards.db) == before
    assert client.post("/v1/redemptions", json={"member_id": b, "reward": "limited"}).is_success
    # stock 1: the first member takes it, the second finds it gone
    assert client.post("/v1/redemptions", json={"member_id": a, "reward": "scarce"}).is_success
    assert stock(rewards.db, "scarce") == 0
    before = counts(rewards.db)
    r = client.post("/v1/redemptions", json={"member_id": b, "reward": "scarce"})
    assert_problem(r, 409, "out_of_stock")
    assert counts(rewards.db) == before
    assert balance(client, a) == (970, 0, 0)
    assert balance(client, b) == (990, 0, 0)


def test_validity_window_is_half_open(rewards: Any, client: Any, clock: Any) -> None:
    mid = new_member(client, "13800000001")
    give(client, mid, 1000)
    clock.freeze(datetime(2026, 6, 30, 15, 59, 59, tzinfo=UTC))  # 23:59:59 on 30 June, Shanghai
    assert client.post("/v1/redemptions", json={"member_id": mid, "reward": "window"}).is_success
    clock.freeze(datetime(2026, 6, 30, 16, 0, tzinfo=UTC))  # 1 July 00:00 Shanghai
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "window"})
    assert_problem(r, 409, "reward_not_available")
    assert client.post("/v1/redemptions", json={"member_id": mid, "reward": "later"}).is_success


def test_tier_restriction_lifts_after_an_upgrade(rewards: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    give(client, mid, 100)
    assert_problem(
        client.post("/v1/redemptions", json={"member_id": mid, "reward": "gold-only"}),
        409,
        "tier_not_allowed",
    )
    # ¥3,000 in the window crosses gold at once
    o = client.post(
        "/v1/orders",
        json=order_payload("big", mid, paid=300_000, occurred_at="2026-06-08T10:00:00+08:00"),
    )
    assert o.status_code == 201
    assert client.get(f"/v1/members/{mid}").json()["tier"]["code"] == "gold"
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "gold-only"})
    assert r.status_code == 201, r.text


def test_pending_points_cannot_be_spent(rewards: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    o = client.post(
        "/v1/orders",
        json=order_payload("pend", mid, paid=50_000, occurred_at="2026-06-08T10:00:00+08:00"),
    )
    assert o.json()["points"]["earned"] == 500
    assert balance(client, mid) == (0, 500, 0)
    before = counts(rewards.db)
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"})
    body = assert_problem(r, 409, "insufficient_points")
    assert body["available"] == 0
    assert counts(rewards.db) == before


def test_cancel_restores_points_to_their_lots_with_original_expiry(
    rewards: Any, client: Any, clock: Any
) -> None:
    db = rewards.db
    mid = new_member(client, "13800000001")
    give(client, mid, 200)
    clock.advance(timedelta(days=5))
    give(client, mid, 500)
    before_lots = lots(db, mid)
    red = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"}).json()
    r = client.post(f"/v1/redemptions/{red['id']}/cancel", json={"reason": "changed mind"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["cancelled_at"]) == ("cancelled", clock.now().isoformat())
    assert lots(db, mid) == before_lots
    assert balance(client, mid) == (700, 0, 0)
    rev = client.get(f"/v1/members/{mid}/ledger").json()["items"][0]
    assert (rev["id"], rev["kind"], rev["available"]) == (body["cancel_entry_id"], "reversal", 300)
    assert rev["corrects_entry_id"] == red["entry_id"]
    assert rev["reason"] == "changed mind"
    lot_a, lot_b = sorted(before_lots)
    assert rev["details"]["lots"] == [[lot_b, 100], [lot_a, 200]]
    # twice is refused and changes nothing
    before = counts(db)
    again = client.post(f"/v1/redemptions/{red['id']}/cancel")
    assert_problem(again, 409, "redemption_already_cancelled")
    assert counts(db) == before
    verify_clean(db)


def test_cancel_gives_back_stock_and_the_member_limit(rewards: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    give(client, mid, 1000)
    red = client.post("/v1/redemptions", json={"member_id": mid, "reward": "scarce"}).json()
    lim = client.post(
        "/v1/redemptions", json={"member_id": mid, "reward": "limited", "quantity": 2}
    ).json()
    assert stock(rewards.db, "scarce") == 0
    for x in (red, lim):
        assert client.post(f"/v1/redemptions/{x['id']}/cancel").status_code == 200
    assert stock(rewards.db, "scarce") == 1
    (usage,) = rows(
        rewards.db,
        "SELECT used FROM reward_usage WHERE member_id = :m AND reward_id = "
        "(SELECT id FROM reward WHERE code = 'limited')",
        m=mid,
    )
    assert usage["used"] == 0
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "limited", "quantity": 2})
    assert r.status_code == 201, r.text
    assert client.post("/v1/redemptions", json={"member_id": mid, "reward": "scarce"}).is_success
    assert balance(client, mid) == (1000 - 20 - 10, 0, 0)


def test_cancel_after_the_lot_expired_restores_then_expires(
    rewards: Any, client: Any, clock: Any
) -> None:
    """A lot that has expired since the redemption cannot be revived: the points come back
    and expire in the same step (two entries), the lot that is still valid gets its share."""
    db = rewards.db
    mid = new_member(client, "13800000001")
    give(client, mid, 200)  # lot A: expires 2026-07-10T16:00Z
    clock.advance(timedelta(days=5))
    give(client, mid, 500)  # lot B: expires 2026-07-15T16:00Z
    lot_a, lot_b = sorted(lots(db, mid))
    red = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"}).json()
    # A (all of it used) expires; the expiry job finds nothing to take from it
    clock.freeze(datetime(2026, 7, 12, 4, 0, tzinfo=UTC))
    jobs.run_due(db)
    assert lots(db, mid)[lot_a][1:3] == (0, "closed")
    assert balance(client, mid) == (400, 0, 0)
    r = client.post(f"/v1/redemptions/{red['id']}/cancel")
    assert r.status_code == 200, r.text
    items = client.get(f"/v1/members/{mid}/ledger").json()["items"]
    expire, reversal = items[0], items[1]
    assert (reversal["kind"], reversal["available"]) == ("reversal", 300)
    assert reversal["details"]["lots"] == [[lot_b, 100], [lot_a, 200]]
    assert (expire["kind"], expire["available"]) == ("expire", -200)
    assert expire["source"] == {"type": "lot", "id": str(lot_a)}
    assert expire["occurred_at"] == "2026-07-10T16:00:00+00:00"
    assert lots(db, mid) == {
        lot_a: (200, 0, "expired", "2026-07-10T16:00:00+00:00"),
        lot_b: (500, 500, "available", "2026-07-15T16:00:00+00:00"),
    }
    assert balance(client, mid) == (500, 0, 0)
    verify_clean(db)
    # and B expires in its turn, whole
    clock.freeze(datetime(2026, 7, 16, 4, 0, tzinfo=UTC))
    jobs.run_due(db)
    assert balance(client, mid) == (0, 0, 0)
    verify_clean(db)


def test_cancel_of_unknown_or_out_of_scope_redemption_is_404(rewards: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    give(client, mid, 1000)
    red = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"}).json()
    before = counts(rewards.db)
    assert_problem(client.post("/v1/redemptions/999999/cancel"), 404, "redemption_not_found")
    with api_client(rewards.db, rewards.keys["sz1"]) as sz1:
        assert_problem(sz1.post(f"/v1/redemptions/{red['id']}/cancel"), 404, "redemption_not_found")
        assert_problem(
            sz1.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"}),
            404,
            "member_not_found",
        )
    assert counts(rewards.db) == before
    assert balance(client, mid) == (700, 0, 0)


def test_redemption_and_cancel_replay_with_their_idempotency_keys(
    rewards: Any, client: Any
) -> None:
    mid = new_member(client, "13800000001")
    give(client, mid, 1000)
    h = {"Idempotency-Key": "redeem-1"}
    first = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"}, headers=h)
    second = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"}, headers=h)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert balance(client, mid) == (700, 0, 0)
    h = {"Idempotency-Key": "cancel-1"}
    path = f"/v1/redemptions/{first.json()['id']}/cancel"
    c1 = client.post(path, headers=h)
    c2 = client.post(path, headers=h)
    assert (c1.status_code, c2.status_code) == (200, 200)
    assert c1.json() == c2.json()
    assert balance(client, mid) == (1000, 0, 0)


def test_a_redemption_expires_overdue_lots_then_writes_its_entry_once_complete(
    rewards: Any, client: Any, clock: Any
) -> None:
    """The debit reads the available lots once: an overdue one expires first (its own entry),
    the rest are spent; the redeem entry is inserted with its lots, source and dedupe key
    and never updated, and the hash chain holds (issue 11, session 8)."""
    db = rewards.db
    mid = new_member(client, "13800000001")
    give(client, mid, 200)  # lot A: valid through 2026-07-10 (Shanghai)
    clock.advance(timedelta(days=10))
    give(client, mid, 500)  # lot B: valid through 2026-07-20
    lot_a, lot_b = sorted(lots(db, mid))
    clock.advance(timedelta(days=22))  # 2026-07-12: lot A is overdue, not yet expired
    with recorded_statements(db.engine) as seen:
        r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert not [s for s in seen if " ".join(s.split()).startswith("UPDATE ledger_entry")]
    lot_reads = [s for s in seen if " ".join(s.split()).startswith("SELECT points_lot.id")]
    assert len(lot_reads) == 1
    redeem_entry, expire_entry = client.get(f"/v1/members/{mid}/ledger").json()["items"][:2]
    assert (expire_entry["kind"], expire_entry["available"]) == ("expire", -200)
    assert expire_entry["source"] == {"type": "lot", "id": str(lot_a)}
    assert (redeem_entry["id"], redeem_entry["kind"]) == (body["entry_id"], "redeem")
    assert redeem_entry["available"] == -300
    assert redeem_entry["source"] == {"type": "redemption", "id": str(body["id"])}
    assert redeem_entry["details"] == {"lots": [[lot_b, 300]]}
    (row,) = rows(db, "SELECT dedupe_key FROM ledger_entry WHERE id = :e", e=body["entry_id"])
    assert row["dedupe_key"] == f"redemption:{body['id']}:redeem"
    assert lots(db, mid) == {
        lot_a: (200, 0, "expired", "2026-07-10T16:00:00+00:00"),
        lot_b: (500, 200, "available", "2026-07-20T16:00:00+00:00"),
    }
    assert balance(client, mid) == (200, 0, 0)
    verify_clean(db)
    with db.transaction() as s:
        assert ledger.chain_problems(s) == {}


def test_a_redemption_the_lots_cannot_cover_writes_nothing(rewards: Any, client: Any) -> None:
    """The lots are planned before the entry is written: when the cache says enough but the
    lots hold less, the answer is 409 insufficient_points and no entry, lot or redemption
    changes."""
    db = rewards.db
    mid = new_member(client, "13800000001")
    give(client, mid, 200)
    with db.transaction() as s:  # the cache disagrees with the lots (as verify would report)
        s.execute(
            text("UPDATE points_account SET available = 1000 WHERE owner_member_id = :m"),
            {"m": mid},
        )
    before = counts(db)
    lots_before = lots(db, mid)
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "mug"})
    assert_problem(r, 409, "insufficient_points")
    assert counts(db) == before
    assert lots(db, mid) == lots_before
