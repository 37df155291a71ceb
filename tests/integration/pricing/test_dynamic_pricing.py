"""Dynamic reward pricing (issue 15, item 5): a quote holds its price for the quote period,
a redemption with the quote pays it and records why, past redemptions never change, and the
dry run shows tomorrow's prices. Property tests (Hypothesis) on a real database."""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.itest import apply_document, assert_problem, demo_document, new_member, rows
from typer.testing import CliRunner

from loyalist.cli.main import app
from loyalist.config import get_settings
from loyalist.errors import LoyalistError
from loyalist.kit.actor import SYSTEM
from loyalist.models import Member
from loyalist.programme import service as programmes
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCreate

# clock fixture: 2026-06-10T04:00Z (12:00 Wednesday in Shanghai)
PRICING = {
    "floor_ratio": "1",
    "ceiling_ratio": "3",
    "quote_minutes": 30,
    "rules": [
        {"code": "scarce", "factor": "1.5", "stock_below": 5},
        {"code": "hot", "factor": "2", "demand_at_least": 3, "demand_days": 7},
        {"code": "vip", "factor": "0.5", "when": {"contains": {"member.tags": "vip"}}},
    ],
}
REWARDS = [
    {"code": "lamp", "name": "台灯", "points": 100, "stock": 7, "pricing": PRICING},
    {"code": "mug", "name": "Mug", "points": 300},
]


@pytest.fixture
def priced(world: Any) -> Any:
    doc = demo_document()
    doc["rewards"] = REWARDS
    assert apply_document(world.db, doc) == 2
    return world


def give(client: Any, mid: int, points: int) -> None:
    r = client.post(f"/v1/members/{mid}/adjustments", json={"points": points, "reason": "setup"})
    assert r.status_code == 201, r.text


def redeem(client: Any, mid: int, code: str = "lamp", **extra: Any) -> Any:
    return client.post("/v1/redemptions", json={"member_id": mid, "reward": code, **extra})


def quote(client: Any, mid: int, code: str = "lamp") -> dict[str, Any]:
    r = client.post(f"/v1/rewards/{code}/quote", json={"member_id": mid})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_price_follows_stock_and_demand_and_a_quote_holds_it(
    priced: Any, client: Any, clock: Any
) -> None:
    buyer = new_member(client, "13800000001")
    mid = new_member(client, "13800000002")
    give(client, buyer, 5_000)
    give(client, mid, 5_000)
    q = quote(client, mid)
    assert (q["points"], q["base_points"], q["ratio"], q["rules"]) == (100, 100, "1", [])
    assert q["valid_until"] == "2026-06-10T04:30:00+00:00"
    assert q["reason"] == "100 × 1 = 100: no rule applies"
    # three redemptions at stock 7, 6, 5 (not below 5) and demand 0, 1, 2 (below 3)
    paid = [redeem(client, buyer).json()["points"] for _ in range(3)]
    assert paid == [100, 100, 100]
    clock.advance(timedelta(minutes=10))
    # the quote is unchanged while valid (asking again gives the same quote)
    again = quote(client, mid)
    assert (again["id"], again["points"]) == (q["id"], 100)
    r = redeem(client, mid, quote_id=q["id"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["points"], body["quote_id"]) == (100, q["id"])
    assert body["pricing"]["unit_points"] == 100
    # without the quote the member pays the current price: stock 3 < 5 and 4 ≥ 3 redeemed
    now = redeem(client, mid).json()
    assert now["points"] == 300  # 100 × 1.5 × 2 = 300 (at the ceiling, not above it)
    assert [x["code"] for x in now["pricing"]["rules"]] == ["scarce", "hot"]
    assert now["pricing"]["reason"] == (
        "100 × 3 = 300: stock 3 < 5 → ×1.5; 4 redeemed in 7 days ≥ 3 → ×2"
    )
    # what the member page offers follows the same price (stock 2, demand 5: 300)
    with priced.db.transaction() as s:
        e = rewards.eligibility(
            s, programmes.active(s)[1], s.get(Member, mid), rewards.get_reward(s, "lamp"), 250
        )
        assert (e.ok, e.reason, e.points) == (False, "insufficient_points", 300)
    # after the quote period the quote is refused and nothing is written
    clock.advance(timedelta(minutes=20))
    r = redeem(client, mid, quote_id=q["id"])
    assert_problem(r, 409, "quote_expired")
    # a quote is for one member and one reward
    other = quote(client, buyer)
    assert_problem(redeem(client, mid, quote_id=other["id"]), 409, "quote_mismatch")
    assert_problem(redeem(client, mid, quote_id=999_999), 404, "quote_not_found")
    # audited
    (n,) = rows(priced.db, "SELECT count(*) AS n FROM audit_log WHERE action = 'reward.quote'")
    assert n["n"] == 3


def test_member_condition_lowers_the_price_for_tagged_members(
    priced: Any, client: Any, clock: Any
) -> None:
    vip = new_member(client, "13800000003")
    plain = new_member(client, "13800000004")
    r = client.post(f"/v1/members/{vip}/tags", json={"add": ["vip"]})
    assert r.status_code in (200, 201), r.text
    assert quote(client, plain)["points"] == 100
    q = quote(client, vip)
    # 0.5 is below the floor: held at 1 × base
    assert (q["points"], q["ratio"]) == (100, "1")
    assert q["rules"] == [{"code": "vip", "factor": "0.5", "why": "member condition met"}]
    assert q["reason"].endswith("held at the floor")


def test_fixed_price_reward_records_no_pricing(priced: Any, client: Any) -> None:
    mid = new_member(client, "13800000005")
    give(client, mid, 1_000)
    body = redeem(client, mid, "mug").json()
    assert (body["points"], body["quote_id"], body["pricing"]) == (300, None, None)
    q = quote(client, mid, "mug")
    assert (q["points"], q["reason"]) == (300, "300 × 1 = 300: no rule applies")


def test_dry_run_shows_tomorrows_prices(priced: Any, client: Any, clock: Any) -> None:
    mid = new_member(client, "13800000006")
    give(client, mid, 5_000)
    for _ in range(3):
        assert redeem(client, mid).status_code == 201
    with priced.db.transaction() as s:
        tomorrow = {r.code: p.points for r, p in rewards.prices_on(s, date(2026, 6, 11))}
        # eight days later the three redemptions leave the 7-day window
        later = {r.code: p.points for r, p in rewards.prices_on(s, date(2026, 6, 18))}
    assert tomorrow == {"lamp": 300, "mug": 300}  # stock 4 < 5 ×1.5, 3 ≥ 3 ×2 → 300
    assert later == {"lamp": 150, "mug": 300}


PHONES = itertools.count(13900000000)


def test_cli_prints_tomorrows_prices(
    priced: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = new_member(client, "13800000007")
    give(client, mid, 5_000)
    for _ in range(3):
        assert redeem(client, mid).status_code == 201
    monkeypatch.setenv("LOYALIST_DATABASE_URL", priced.db.url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["rewards", "prices", "--date", "tomorrow"])
        bad = CliRunner().invoke(app, ["rewards", "prices", "--date", "someday"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "reward prices on 2026-06-11" in out.output
    lamp = next(line for line in out.output.splitlines() if "lamp" in line)
    assert [c.strip() for c in lamp.split("│")[1:5]] == ["lamp", "100", "300", "3"]
    assert bad.exit_code == 2


# ── properties ─────────────────────────────────────────────────────────────────────────
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    redeemed_before=st.integers(min_value=0, max_value=4),
    wait_minutes=st.integers(min_value=0, max_value=45),
    redeemed_meanwhile=st.integers(min_value=0, max_value=2),
)
def test_a_quote_is_honoured_for_its_period_and_past_redemptions_never_change(
    priced: Any,
    client: Any,
    clock: Any,
    redeemed_before: int,
    wait_minutes: int,
    redeemed_meanwhile: int,
) -> None:
    buyer = new_member(client, str(next(PHONES)))
    give(client, buyer, 5_000)
    client.post("/v1/rewards/lamp/stock", json={"quantity": 20})
    for _ in range(redeemed_before):
        assert redeem(client, buyer).status_code == 201
    q = quote(client, buyer)
    assert 100 <= q["points"] <= 300
    before = rows(priced.db, "SELECT id, points, pricing FROM redemption ORDER BY id")
    clock.advance(timedelta(minutes=wait_minutes))
    for _ in range(redeemed_meanwhile):
        assert redeem(client, buyer).status_code == 201
    r = redeem(client, buyer, quote_id=q["id"])
    if wait_minutes < 30:
        assert r.status_code == 201, r.text
        assert r.json()["points"] == q["points"]
    else:
        assert_problem(r, 409, "quote_expired")
    after = rows(priced.db, "SELECT id, points, pricing FROM redemption ORDER BY id")
    assert after[: len(before)] == before
    for row in after:
        assert 100 <= row["points"] <= 300


def test_concurrent_redemptions_are_priced_from_the_stock_under_the_lock(
    priced: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven members redeem the last seven lamps at once. Each price must come from the
    stock (and demand) the redemption before it left: 7, 6, 5 in stock → 100; from 4 left
    (and 3 redeemed) → 300. A slow demand read widens the window a stale stock read needs."""
    buyers = [new_member(client, f"1380000010{i}") for i in range(7)]
    for mid in buyers:
        give(client, mid, 1_000)
    slow = rewards.demand

    def slowly(*args: Any, **kw: Any) -> int:
        time.sleep(0.2)
        return slow(*args, **kw)

    monkeypatch.setattr(rewards, "demand", slowly)
    start = threading.Barrier(len(buyers))
    failures: list[str] = []

    def buy(mid: int) -> None:
        start.wait(timeout=30)
        try:
            priced.db.run(
                lambda s: rewards.redeem(s, SYSTEM, RedemptionCreate(member_id=mid, reward="lamp"))
            )
        except LoyalistError as exc:  # pragma: no cover — shown by the assertion below
            failures.append(exc.code)

    threads = [threading.Thread(target=buy, args=(m,)) for m in buyers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    # in the order they took the stock (ids are drawn under the lock)
    paid = rows(priced.db, "SELECT points, pricing FROM redemption ORDER BY id")
    assert [r["points"] for r in paid] == [100, 100, 100, 300, 300, 300, 300]
    reasons = [
        (r["pricing"] if isinstance(r["pricing"], dict) else json.loads(r["pricing"]))["reason"]
        for r in paid
    ]
    assert reasons[3:] == [
        f"100 × 3 = 300: stock {left} < 5 → ×1.5; {n} redeemed in 7 days ≥ 3 → ×2"
        for left, n in ((4, 3), (3, 4), (2, 5), (1, 6))
    ]
    (lamp,) = rows(priced.db, "SELECT stock_remaining FROM reward WHERE code = 'lamp'")
    assert lamp["stock_remaining"] == 0
