"""An order reads only what its programme needs (speed, issue 11): the day's and lifetime
earnings when a cap uses them, the member's passes when the programme sells any; and what
it skips changes nothing it answers. The account's due lots are looked for on every order
(one SELECT), so an answer never counts points that are past their expiry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.itest import apply_document, demo_document, new_member
from tests.support import order_payload, recorded_statements

from loyalist.kit.clock import clock

DAY_SUM = "sum(orders.points_earned)"  # the day's earnings (caps.per_day)
SHARED = "FROM points_account_member WHERE points_account_member.role"  # lifetime (per_member)
PASSES = "FROM member_pass"
DUE_LOTS = "points_lot.expires_at <="  # expire_due


def reads(seen: list[str], marker: str) -> int:
    """How many statements contain ``marker`` (their whitespace folded to single blanks)."""
    return sum(1 for s in seen if marker in " ".join(s.split()))


def programme(caps: dict[str, int]) -> dict[str, Any]:
    doc = demo_document()
    doc["points"]["pending_days"] = 0  # available at once: the due-lot check could apply
    doc["earning"]["campaigns"] = []
    doc["earning"]["rules"] = []
    doc["earning"]["caps"] = caps
    doc.pop("passes", None)  # a programme that sells no pass (the demo sells one)
    return doc


def buy(client: Any, external_id: str, member_id: int, paid: int, **kw: Any) -> dict[str, Any]:
    r = client.post("/v1/orders", json=order_payload(external_id, member_id, paid=paid, **kw))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_an_order_without_caps_or_passes_skips_those_reads(world: Any, client: Any) -> None:
    apply_document(world.db, programme({}))
    mid = new_member(client, "13800000101")
    buy(client, "warm", mid, 1_000)
    with recorded_statements(world.db.engine) as seen:
        body = buy(client, "o-1", mid, 2_500)
    assert body["points"]["earned"] == 25
    assert [reads(seen, m) for m in (DAY_SUM, SHARED, PASSES, DUE_LOTS)] == [0, 0, 0, 1]


def test_caps_are_still_read_and_applied_when_the_programme_has_them(
    world: Any, client: Any
) -> None:
    apply_document(world.db, programme({"per_day": 40, "per_member": 60}))
    mid = new_member(client, "13800000102")
    with recorded_statements(world.db.engine) as seen:
        first = buy(client, "o-1", mid, 3_000)
    assert [reads(seen, m) for m in (DAY_SUM, SHARED, PASSES)] == [1, 1, 0]
    assert first["points"]["earned"] == 30
    assert buy(client, "o-2", mid, 3_000)["points"]["earned"] == 10  # 40 a day
    day_before = "2026-06-09T11:00:00+08:00"
    assert buy(client, "o-3", mid, 3_000, occurred_at=day_before)["points"]["earned"] == 20


def test_every_order_expires_the_accounts_due_lots(world: Any, client: Any) -> None:
    apply_document(world.db, programme({}))
    mid = new_member(client, "13800000103")
    with recorded_statements(world.db.engine) as seen:
        fresh = buy(client, "fresh", mid, 1_000)
    assert reads(seen, DUE_LOTS) == 1
    assert (fresh["points"]["status"], fresh["points"]["open"]) == ("available", 10)
    # earned 2024: expired at the end of 2025 (the clock reads 2026-06-10)
    with recorded_statements(world.db.engine) as seen:
        gone = buy(client, "gone", mid, 1_000, occurred_at="2024-06-03T10:00:00+08:00")
    assert reads(seen, DUE_LOTS) == 1
    assert (gone["points"]["status"], gone["points"]["open"], gone["points"]["expired"]) == (
        "expired",
        0,
        10,
    )
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (10, 0)
    # "fresh" (earned 2026-06) expires at the end of 2027: past it, with no expiry job run,
    # the next order expires it before it answers
    clock.freeze(datetime(2028, 1, 2, 12, tzinfo=UTC))
    later = buy(client, "later", mid, 700, occurred_at="2028-01-02T10:00:00+08:00")
    assert (later["points"]["status"], later["points"]["open"]) == ("available", 7)
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (7, 0)
