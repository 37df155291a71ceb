"""Dashboard figures on a small known dataset, worked out by hand: exact for every store,
region and HQ; a region's totals are the sum of its stores; the period follows the
programme's time zone; scope and permission are enforced by the service.

The shop (programme-local times, Asia/Shanghai; the period is 2026-06-01 … 2026-06-10):

  members  m1 sh1 (04-25)  m2 sh1 (06-03)  m3 sh2 (06-05)  m4 sz1 (05-20)  m5 gz1 (06-10)
           m6 at HQ, no store (06-02)
  orders   o0 m1 sh1 05-03 ¥40     o1 m1 sh1 05-28 ¥50      guest sh1 05-31 23:59 ¥20
           o2 m1 sh1 06-02 ¥120    o3 m1 sh1 06-05 ¥80      o4 m2 sh1 06-04 23:30 ¥30
           guest sh1 06-01 00:10 ¥20                         o6 m3 sh2 06-06 ¥99
           guest sh2 06-07 ¥45     o8 m4 sz1 06-03 ¥1,500 (→ silver)
           o9 m4 sz1 06-08 ¥70 (silver: ×1.2 = 84 points)    o10 m5 gz1 06-10 ¥60
  points   1 point per ¥1, pending 7 days, expiry 1 month (rolling), 100 points = ¥1.50;
           m4: +3,000 by staff on 06-09, then redeems an americano (1,500) at sz1;
           jobs run daily at 02:00: o0 (40) expires on 06-04, o1 (50) and o2 (120) activate
           on 06-05 and 06-10.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy.orm import Session
from tests.console import make_users
from tests.itest import counts
from tests.support import DEMO_PROGRAMME

from loyalist.dashboard import service as dashboards
from loyalist.dashboard.service import Dashboard, Period
from loyalist.errors import Forbidden, LoyalistError
from loyalist.jobs import service as jobs
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import clock as global_clock
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import DashboardDaily, DashboardFold, OrgUnit
from loyalist.order import service as orders
from loyalist.order.schemas import LineIn, OrderCreate
from loyalist.programme import service as programmes
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCreate
from loyalist.staff import service as staff

TZ = ZoneInfo("Asia/Shanghai")
PERIOD = Period(date(2026, 6, 1), date(2026, 6, 11))


def local(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def programme_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEMO_PROGRAMME.read_text(encoding="utf-8"))
    doc["earning"]["rules"] = []
    doc["earning"]["campaigns"] = []
    doc["points"]["expiry"] = {"kind": "rolling_months", "months": 1}
    doc["points"]["value_minor_per_100_points"] = 150
    return doc


Event = tuple[datetime, Callable[[Session], Any]]


def _member(key: str, phone: str, store: str | None, ids: dict[str, int]) -> Callable[..., Any]:
    def fn(s: Session) -> None:
        data = MemberCreate(phone=phone, name=key, home_store=store)
        ids[key] = members.create(s, SYSTEM, data).member.id

    return fn


def _order(
    ext: str, who: str | None, store: str, paid: int, at: datetime, ids: dict[str, int]
) -> Callable[..., Any]:
    def fn(s: Session) -> None:
        line = LineIn(sku="LATTE", category="coffee", quantity=1, unit_price_minor=paid)
        data = OrderCreate(
            external_id=ext,
            member_id=ids[who] if who else None,
            store=store,
            occurred_at=at,
            amount_paid_minor=paid,
            lines=[line],
        )
        orders.record(s, SYSTEM, data)

    return fn


def build_shop(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.transaction() as s:
        programmes.apply(s, programmes.parse(programme_doc()), actor="test")

    def adjust(s: Session) -> None:
        members.adjust_points(s, SYSTEM, ids["m4"], 3000, "service recovery")

    def redeem(s: Session) -> None:
        rewards.redeem(
            s, SYSTEM, RedemptionCreate(member_id=ids["m4"], reward="americano", store="sz1")
        )

    events: list[Event] = [
        (local(4, 25), _member("m1", "13800000001", "sh1", ids)),
        (local(5, 20), _member("m4", "13800000004", "sz1", ids)),
        (local(6, 3, 8), _member("m2", "13800000002", "sh1", ids)),
        (local(6, 5, 8), _member("m3", "13800000003", "sh2", ids)),
        (local(6, 10, 9), _member("m5", "13800000005", "gz1", ids)),
        (local(6, 2, 8), _member("m6", "13800000006", None, ids)),
        (local(5, 3), _order("o0", "m1", "sh1", 4000, local(5, 3), ids)),
        (local(5, 28), _order("o1", "m1", "sh1", 5000, local(5, 28), ids)),
        (local(5, 31, 23, 59), _order("g0", None, "sh1", 2000, local(5, 31, 23, 59), ids)),
        (local(6, 1, 0, 10), _order("g1", None, "sh1", 2000, local(6, 1, 0, 10), ids)),
        (local(6, 2), _order("o2", "m1", "sh1", 12000, local(6, 2), ids)),
        (local(6, 3, 15), _order("o8", "m4", "sz1", 150000, local(6, 3, 15), ids)),
        (local(6, 4, 23, 30), _order("o4", "m2", "sh1", 3000, local(6, 4, 23, 30), ids)),
        (local(6, 5), _order("o3", "m1", "sh1", 8000, local(6, 5), ids)),
        (local(6, 6, 12), _order("o6", "m3", "sh2", 9900, local(6, 6, 12), ids)),
        (local(6, 7, 9), _order("g2", None, "sh2", 4500, local(6, 7, 9), ids)),
        (local(6, 8, 15), _order("o9", "m4", "sz1", 7000, local(6, 8, 15), ids)),
        (local(6, 9, 11), adjust),
        (local(6, 9, 12), redeem),
        (local(6, 10, 9, 30), _order("o10", "m5", "gz1", 6000, local(6, 10, 9, 30), ids)),
    ]
    events.sort(key=lambda e: e[0])
    state = global_clock.snapshot()
    now = global_clock.now()
    try:
        day = date(2026, 4, 25)
        pending = list(events)
        while day <= date(2026, 6, 10):
            at_two = datetime(day.year, day.month, day.day, 2, tzinfo=TZ)
            global_clock.freeze(at_two)
            jobs.activate_pending(db)
            jobs.expire_points(db)
            nxt = datetime.combine(day + timedelta(days=1), datetime.min.time(), TZ)
            while pending and pending[0][0] < nxt:
                at, fn = pending.pop(0)
                global_clock.freeze(at)
                db.run(fn)
            day += timedelta(days=1)
        assert not pending
    finally:
        global_clock.restore(state)
    assert global_clock.now() == now  # 2026-06-10 12:00 in Shanghai
    return ids


@pytest.fixture
def shop(world: Any) -> dict[str, int]:
    return build_shop(world.db)


def _paths(db: Database) -> dict[str, str]:
    with db.transaction() as s:
        return {u.code: u.path for u in s.query(OrgUnit)}


def _build(db: Database, actor: Actor, unit: str | None, period: Period = PERIOD) -> Dashboard:
    with db.transaction() as s:
        return dashboards.build(s, actor, unit_code=unit, period=period)


def _hq(db: Database) -> Actor:
    return Actor(name="test:hq", scope_path=_paths(db)["hq"], principal="test")


# Hand-computed, per unit.
EXPECTED: dict[str, dict[str, Any]] = {
    "sh1": {
        "members_total": 2,
        "members_new": 1,
        "members_active": 2,
        "orders": 4,
        "member_orders": 3,
        "sales_minor": 25000,
        "member_sales_minor": 23000,
        "non_member_sales_minor": 2000,
        "aov_minor": 6250,
        "member_aov_minor": 7667,
        "repurchase_rate": 0.5,
        "points_issued": 230,
        "points_activated": 170,
        "points_redeemed": 0,
        "points_expired": 40,
        "liability_points": 170,
        "liability_pending_points": 110,
        "liability_minor": 255,
        "tiers": {"base": 2},
        "tier_moves": [],
        "top_rewards": [],
    },
    "sh2": {
        "members_total": 1,
        "members_new": 1,
        "members_active": 1,
        "orders": 2,
        "member_orders": 1,
        "sales_minor": 14400,
        "member_sales_minor": 9900,
        "non_member_sales_minor": 4500,
        "aov_minor": 7200,
        "member_aov_minor": 9900,
        "repurchase_rate": 0.0,
        "points_issued": 99,
        "points_activated": 0,
        "points_redeemed": 0,
        "points_expired": 0,
        "liability_points": 0,
        "liability_pending_points": 99,
        "liability_minor": 0,
        "tiers": {"base": 1},
        "tier_moves": [],
        "top_rewards": [],
    },
    "sz1": {
        "members_total": 1,
        "members_new": 0,
        "members_active": 1,
        "orders": 2,
        "member_orders": 2,
        "sales_minor": 157000,
        "member_sales_minor": 157000,
        "non_member_sales_minor": 0,
        "aov_minor": 78500,
        "member_aov_minor": 78500,
        "repurchase_rate": 1.0,
        "points_issued": 1500 + 84 + 3000,
        "points_activated": 0,
        "points_redeemed": 1500,
        "points_expired": 0,
        "liability_points": 1500,
        "liability_pending_points": 1584,
        "liability_minor": 2250,
        "tiers": {"silver": 1},
        "tier_moves": [("silver", "upgrade", 1)],
        "top_rewards": [("americano", "美式咖啡一杯", 1, 1500)],
    },
    "gz1": {
        "members_total": 1,
        "members_new": 1,
        "members_active": 1,
        "orders": 1,
        "member_orders": 1,
        "sales_minor": 6000,
        "member_sales_minor": 6000,
        "non_member_sales_minor": 0,
        "aov_minor": 6000,
        "member_aov_minor": 6000,
        "repurchase_rate": 0.0,
        "points_issued": 60,
        "points_activated": 0,
        "points_redeemed": 0,
        "points_expired": 0,
        "liability_points": 0,
        "liability_pending_points": 60,
        "liability_minor": 0,
        "tiers": {"base": 1},
        "tier_moves": [],
        "top_rewards": [],
    },
}
EXPECTED["east"] = {
    **{k: EXPECTED["sh1"][k] + EXPECTED["sh2"][k] for k in EXPECTED["sh1"] if k != "tiers"},
    "tiers": {"base": 3},
    "aov_minor": 6567,  # 39,400 / 6
    "member_aov_minor": 8225,  # 32,900 / 4
    "repurchase_rate": 1 / 3,  # m1 of m1, m2, m3
    "tier_moves": [],
    "top_rewards": [],
}
EXPECTED["south"] = {
    **{k: EXPECTED["sz1"][k] + EXPECTED["gz1"][k] for k in EXPECTED["sz1"] if k != "tiers"},
    "tiers": {"silver": 1, "base": 1},
    "aov_minor": 54333,  # 163,000 / 3
    "member_aov_minor": 54333,
    "repurchase_rate": 0.5,  # m4 of m4, m5
    "tier_moves": [("silver", "upgrade", 1)],
    "top_rewards": [("americano", "美式咖啡一杯", 1, 1500)],
}
EXPECTED["hq"] = {
    **{k: EXPECTED["east"][k] + EXPECTED["south"][k] for k in EXPECTED["east"] if k != "tiers"},
    "members_total": 6,  # m6 belongs to HQ itself, to no region
    "members_new": 4,
    "tiers": {"silver": 1, "base": 5},
    "aov_minor": 22489,  # 202,400 / 9
    "member_aov_minor": 27986,  # 195,900 / 7
    "repurchase_rate": 0.4,  # m1, m4 of m1…m5
    "tier_moves": [("silver", "upgrade", 1)],
    "top_rewards": [("americano", "美式咖啡一杯", 1, 1500)],
}
ADDITIVE = [
    "members_total",
    "members_new",
    "members_active",
    "orders",
    "member_orders",
    "sales_minor",
    "member_sales_minor",
    "non_member_sales_minor",
    "points_issued",
    "points_activated",
    "points_redeemed",
    "points_expired",
    "liability_points",
    "liability_pending_points",
    "liability_minor",
]


def _figures(d: Dashboard) -> dict[str, Any]:
    out = {k: v for k, v in asdict(d).items() if k in EXPECTED["sh1"]}
    out["tiers"] = {code: n for code, _name, n in d.tiers if n}
    return out


def _fold(db: Database, batch: int | None) -> int:
    """Fold everything now (no margin), ``batch`` ids at a time; returns the rows folded."""
    total = 0
    while True:
        with db.transaction() as s:
            n = dashboards.refresh(s, margin=timedelta(0), batch=batch)
        if not n:
            return total
        total += n


def _rollup_rows(db: Database) -> int:
    return counts(db, ["dashboard_daily"])["dashboard_daily"]


@pytest.mark.parametrize("fold", ["live", "folded", "batches of 7", "half"])
@pytest.mark.parametrize("unit", ["sh1", "sh2", "sz1", "gz1", "east", "south", "hq"])
def test_every_figure_is_exact(world: Any, shop: dict[str, int], unit: str, fold: str) -> None:
    if fold == "folded":
        assert _fold(world.db, None) > 0
    elif fold == "batches of 7":
        assert _fold(world.db, 7) > 0
    elif fold == "half":
        with world.db.transaction() as s:
            assert dashboards.refresh(s, margin=timedelta(0), batch=5) == 10
    assert (_rollup_rows(world.db) > 0) == (fold != "live")
    d = _build(world.db, _hq(world.db), unit)
    got = _figures(d)
    want = EXPECTED[unit]
    assert got.pop("repurchase_rate") == pytest.approx(want["repurchase_rate"])
    assert got == {k: v for k, v in want.items() if k != "repurchase_rate"}
    assert (d.unit_code, d.scope_path, d.currency) == (unit, _paths(world.db)[unit], "CNY")


@pytest.mark.parametrize(
    ("region", "stores"), [("east", ["sh1", "sh2"]), ("south", ["sz1", "gz1"])]
)
def test_a_region_is_the_sum_of_its_stores(
    world: Any, shop: dict[str, int], region: str, stores: list[str]
) -> None:
    hq = _hq(world.db)
    whole = _build(world.db, hq, region)
    parts = [_build(world.db, hq, s) for s in stores]
    for key in ADDITIVE:
        assert getattr(whole, key) == sum(getattr(p, key) for p in parts), key
    for i, (day, member, guest) in enumerate(whole.daily):
        assert member == sum(p.daily[i][1] for p in parts), day
        assert guest == sum(p.daily[i][2] for p in parts), day


def test_daily_sales_follow_the_programme_time_zone(world: Any, shop: dict[str, int]) -> None:
    d = _build(world.db, _hq(world.db), "hq")
    assert d.daily == [
        (date(2026, 6, 1), 0, 2000),  # 00:10 local is still May 31 in UTC
        (date(2026, 6, 2), 12000, 0),
        (date(2026, 6, 3), 150000, 0),
        (date(2026, 6, 4), 3000, 0),  # 23:30 local
        (date(2026, 6, 5), 8000, 0),
        (date(2026, 6, 6), 9900, 0),
        (date(2026, 6, 7), 0, 4500),
        (date(2026, 6, 8), 7000, 0),
        (date(2026, 6, 9), 0, 0),
        (date(2026, 6, 10), 6000, 0),
    ]
    # The guest order at 23:59 on May 31 (local) belongs to the day before the period.
    may31 = _build(world.db, _hq(world.db), "sh1", Period(date(2026, 5, 31), date(2026, 6, 1)))
    assert (may31.orders, may31.sales_minor, may31.daily) == (
        1,
        2000,
        [(date(2026, 5, 31), 0, 2000)],
    )


def test_liability_money_value_follows_the_programme(world: Any, shop: dict[str, int]) -> None:
    doc = programme_doc()
    doc["points"]["value_minor_per_100_points"] = 33
    with world.db.transaction() as s:
        programmes.apply(s, programmes.parse(doc), actor="test")
    d = _build(world.db, _hq(world.db), "hq")
    assert (d.liability_points, d.liability_minor) == (1670, 551)  # 1,670 × ¥0.33 / 100


def test_the_default_unit_is_the_actor_own(world: Any, shop: dict[str, int]) -> None:
    make_users(world.db)
    with world.db.transaction() as s:
        for login, unit in [("admin", "hq"), ("east.manager", "east"), ("sh1.staff", "sh1")]:
            actor = staff.actor_for(s, staff.get_by_login(s, login))
            d = dashboards.build(s, actor, unit_code=None, period=PERIOD)
            assert (d.unit_code, d.sales_minor) == (unit, EXPECTED[unit]["sales_minor"])


@pytest.mark.parametrize(
    ("login", "allowed", "refused"),
    [
        ("east.manager", ["east", "sh1", "sh2"], ["hq", "south", "sz1", "gz1"]),
        ("sh1.staff", ["sh1"], ["hq", "east", "sh2", "south", "sz1"]),
        ("east.analyst", ["east", "sh2"], ["hq", "south", "gz1"]),
        ("analyst", ["hq", "east", "gz1"], []),
    ],
)
def test_scope_out_of_reach_is_404_and_writes_nothing(
    world: Any, shop: dict[str, int], login: str, allowed: list[str], refused: list[str]
) -> None:
    make_users(world.db)
    with world.db.transaction() as s:
        actor = staff.actor_for(s, staff.get_by_login(s, login))
        for unit in allowed:
            d = dashboards.build(s, actor, unit_code=unit, period=PERIOD)
            assert d.sales_minor == EXPECTED[unit]["sales_minor"]
    before = counts(world.db)
    with world.db.transaction() as s:
        for unit in [*refused, "no-such-unit"]:
            with pytest.raises(LoyalistError) as exc:
                dashboards.build(s, actor, unit_code=unit, period=PERIOD)
            assert exc.value.status == 404, (login, unit)
        assert {u.code for u in dashboards.scope_units(s, actor)} == set(allowed) | (
            {"sh1", "sh2"} if "east" in allowed else set()
        ) | ({"south", "sz1", "gz1"} if "hq" in allowed else set())
    assert counts(world.db) == before


def test_api_key_actor_meets_the_same_scope_rule(world: Any, shop: dict[str, int]) -> None:
    south = Actor(name="apikey:x", scope_path=_paths(world.db)["south"], principal="key:1")
    assert _build(world.db, south, None).sales_minor == EXPECTED["south"]["sales_minor"]
    with pytest.raises(LoyalistError) as exc:
        _build(world.db, south, "sh1")
    assert exc.value.status == 404


def test_roles_without_the_dashboard_are_refused(world: Any, shop: dict[str, int]) -> None:
    make_users(world.db)
    with world.db.transaction() as s:
        agent = staff.actor_for(s, staff.get_by_login(s, "agent"))
        with pytest.raises(Forbidden):
            dashboards.build(s, agent, unit_code=None, period=PERIOD)


@pytest.mark.parametrize(
    "period",
    [Period(date(2026, 6, 10), date(2026, 6, 10)), Period(date(2026, 6, 10), date(2026, 6, 1))],
)
def test_a_period_must_run_forward(world: Any, shop: dict[str, int], period: Period) -> None:
    with pytest.raises(LoyalistError) as exc:
        _build(world.db, _hq(world.db), "hq", period)
    assert exc.value.status == 422


def test_the_dataset_is_what_the_docstring_says(world: Any, shop: dict[str, int]) -> None:
    """Guards the hand computation: balances per member as described."""
    with world.db.transaction() as s:
        got = {}
        for key in ("m1", "m2", "m3", "m4", "m5", "m6"):
            acct = members.profile(s, SYSTEM, shop[key])
            got[key] = (acct.available, acct.pending, acct.member.tier_code)
    assert got == {
        "m1": (170, 80, "base"),
        "m2": (0, 30, "base"),
        "m3": (0, 99, "base"),
        "m4": (1500, 1584, "silver"),
        "m5": (0, 60, "base"),
        "m6": (0, 0, "base"),
    }


def test_the_fold_waits_for_the_margin(world: Any, shop: dict[str, int], clock: Any) -> None:
    rows = counts(world.db, ["orders", "ledger_entry"])
    with world.db.transaction() as s:
        assert dashboards.refresh(s) == 0  # observes the highest ids, folds nothing yet
    clock.advance(dashboards.FOLD_MARGIN - timedelta(seconds=1))
    with world.db.transaction() as s:
        assert dashboards.refresh(s) == 0
    clock.advance(timedelta(seconds=1))
    with world.db.transaction() as s:
        assert dashboards.refresh(s) == rows["orders"] + rows["ledger_entry"]
        assert dashboards.refresh(s) == 0
    d = _build(world.db, _hq(world.db), "hq")
    assert (d.orders, d.sales_minor, d.points_issued) == (9, 202400, 4973)


def test_rows_after_a_fold_are_counted_live_then_folded(
    world: Any, shop: dict[str, int], clock: Any
) -> None:
    _fold(world.db, None)
    clock.advance(timedelta(minutes=30))  # 12:30 on June 10 in Shanghai
    world.db.run(_order("o11", "m5", "gz1", 4000, global_clock.now(), shop))
    world.db.run(_order("g3", None, "gz1", 1000, global_clock.now(), shop))
    for _ in range(2):
        d = _build(world.db, _hq(world.db), "gz1")
        assert (d.orders, d.member_orders, d.sales_minor, d.points_issued) == (3, 2, 11000, 100)
        assert (d.members_active, d.repurchase_rate) == (1, 1.0)
        assert d.daily[-1] == (date(2026, 6, 10), 10000, 1000)
        _fold(world.db, None)


def test_a_new_time_zone_rebuilds_the_rollup(world: Any, shop: dict[str, int]) -> None:
    _fold(world.db, None)
    doc = programme_doc()
    doc["timezone"] = "UTC"
    with world.db.transaction() as s:
        programmes.apply(s, programmes.parse(doc), actor="test")
    folded = _build(world.db, _hq(world.db), "hq")
    # In UTC the guest order of 00:10 on June 1 (Shanghai) falls on May 31.
    assert (folded.orders, folded.sales_minor) == (8, 200400)
    assert folded.daily[:2] == [(date(2026, 6, 1), 0, 0), (date(2026, 6, 2), 12000, 0)]
    _fold(world.db, None)
    again = _build(world.db, _hq(world.db), "hq")
    with world.db.transaction() as s:
        s.execute(DashboardDaily.__table__.delete())
        s.execute(DashboardFold.__table__.delete())
    live = _build(world.db, _hq(world.db), "hq")
    assert asdict(folded) == asdict(again) == asdict(live)


def test_the_rollup_is_a_consumer_and_reading_writes_nothing(
    world: Any, shop: dict[str, int], clock: Any
) -> None:
    from loyalist.dashboard import handlers
    from loyalist.events import consumers

    assert handlers.NAME in {c.name for c in consumers.registered()}
    before = counts(world.db)
    d = _build(world.db, _hq(world.db), "hq")
    assert counts(world.db) == before  # no fold, no watermark observed on a read
    rollup = next(c for c in consumers.registered() if c.name == handlers.NAME)

    def batch() -> int:
        return int(world.db.run(lambda s: consumers.run_batch(s, rollup)))

    observed = counts(world.db, ["orders", "ledger_entry"])
    handled = batch()
    assert handled > 0  # the shop's order and points events wake the fold
    assert _rollup_rows(world.db) == 0  # it observed the highest ids; folds after the margin
    clock.advance(dashboards.FOLD_MARGIN)
    world.db.run(_order("o12", "m5", "gz1", 1000, global_clock.now(), shop))
    assert batch() == 2  # points.earned, order.recorded: the fold runs once for both
    assert _rollup_rows(world.db) > 0
    with world.db.transaction() as s:
        marks = {f.source: f.watermark for f in s.query(DashboardFold)}
        assert marks == {"orders": observed["orders"], "ledger": observed["ledger_entry"]}
    after = _build(world.db, _hq(world.db), "hq")  # the folded days plus o12 live
    assert (after.orders, after.sales_minor) == (d.orders + 1, d.sales_minor + 1000)
    assert after.liability_pending_points == d.liability_pending_points + 10
