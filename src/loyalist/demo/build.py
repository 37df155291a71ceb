"""Build the demo: a coffee-and-bakery chain with two years of history, made through the services.

Everything is written by the same service functions the HTTP API calls (members join,
orders are recorded and returned, rewards redeemed and cancelled, staff adjust points,
the programme publishes a new campaign calendar each December), with the global clock
frozen at each simulated instant so pending periods, activation, expiry, reminders, tier
upgrades and the quarterly tier review happen when they would have happened. The history
is replayed one simulated day per transaction; the data is deterministic for a given seed
and end date.

Two years, because the programme's points expire at the end of the year after the one
they were earned in: only a history that crosses two year ends shows points expiring
(the launch cohort's balances carried over from the old card scheme, and what the first
weeks earned).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from faker import Faker
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from loyalist.access import service as access
from loyalist.config import get_settings
from loyalist.demo import coupons as demo_coupons
from loyalist.demo import fraud as fraud_demo  # fraud controls (issue 13)
from loyalist.demo import habits as habits_demo  # habits (issue 12)
from loyalist.demo import journeys as demo_journeys  # journeys (issue 14)
from loyalist.demo import messages as demo_messages  # channels (issue 14)
from loyalist.demo import referrals as demo_referrals  # referrals (issue 12)
from loyalist.demo.referrals import ReferralReplay  # referrals (issue 12)
from loyalist.demo.shared import Shared, shared_summary  # issues 13, 15
from loyalist.errors import LoyalistError
from loyalist.jobs import service as jobs
from loyalist.kit.actor import Actor
from loyalist.kit.clock import clock
from loyalist.kit.db import Base, Database
from loyalist.kit.localtime import add_months, local_day, start_of_local_day
from loyalist.kit.migrate import upgrade
from loyalist.ledger import service as ledger
from loyalist.member import consent as consent_ledger  # personalisation (issue 14)
from loyalist.member import service as members
from loyalist.member.schemas import IdentityIn, MemberCreate
from loyalist.models import (
    LedgerEntry,
    Member,
    Order,
    OrderReturn,
    OrgUnit,
    OutboxEvent,
    PointsAccount,
    PointsLot,
    Redemption,
)
from loyalist.order import service as orders
from loyalist.order.schemas import LineIn, OrderCreate, ReturnCreate, ReturnLineIn
from loyalist.org import service as org
from loyalist.programme import service as programmes
from loyalist.programme.schemas import Programme
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCancel, RedemptionCreate
from loyalist.staff import service as staff
from loyalist.tier import domain as period_domain
from loyalist.tier import service as tiers
from loyalist.tier.domain import period_of

PROGRAMME_FILE = Path(__file__).with_name("programme.yaml")
DEFAULT_MEMBERS = 1000
DEFAULT_MONTHS = 24

# ── the organisation ────────────────────────────────────────────────────────────────────
HQ = ("hq", "总部")
REGIONS = [("east", "华东区"), ("south", "华南区"), ("north", "华北区")]


@dataclass(frozen=True)
class Store:
    code: str
    name: str
    region: str
    city: str
    weight: float  # relative footfall


STORES = [
    Store("sh-jingan", "上海静安嘉里中心店", "east", "上海", 1.6),
    Store("sh-xintiandi", "上海新天地店", "east", "上海", 1.4),
    Store("sh-lujiazui", "上海陆家嘴国金中心店", "east", "上海", 1.5),
    Store("sh-xujiahui", "上海徐家汇港汇店", "east", "上海", 1.1),
    Store("hz-hubin", "杭州湖滨银泰店", "east", "杭州", 1.0),
    Store("hz-binjiang", "杭州滨江星光大道店", "east", "杭州", 0.7),
    Store("nj-xinjiekou", "南京新街口德基店", "east", "南京", 0.9),
    Store("su-jinjihu", "苏州金鸡湖诚品店", "east", "苏州", 0.7),
    Store("gz-tianhe", "广州天河太古汇店", "south", "广州", 1.3),
    Store("gz-zhujiang", "广州珠江新城店", "south", "广州", 1.0),
    Store("sz-nanshan", "深圳南山海岸城店", "south", "深圳", 1.2),
    Store("sz-futian", "深圳福田卓悦汇店", "south", "深圳", 1.0),
    Store("sz-qianhai", "深圳前海壹方城店", "south", "深圳", 0.8),
    Store("xm-zhongshan", "厦门中山路店", "south", "厦门", 0.6),
    Store("bj-sanlitun", "北京三里屯太古里店", "north", "北京", 1.5),
    Store("bj-guomao", "北京国贸商城店", "north", "北京", 1.4),
    Store("bj-zhongguancun", "北京中关村店", "north", "北京", 1.0),
    Store("bj-wangfujing", "北京王府井店", "north", "北京", 0.9),
    Store("tj-binjiangdao", "天津滨江道店", "north", "天津", 0.7),
    Store("qd-wusi", "青岛五四广场店", "north", "青岛", 0.6),
]


# ── what the shops sell (prices in fen) ─────────────────────────────────────────────────
@dataclass(frozen=True)
class Sku:
    code: str
    name: str
    category: str
    price: int


MENU: dict[str, list[Sku]] = {
    "coffee": [
        Sku("LATTE", "拿铁", "coffee", 3200),
        Sku("AMERICANO", "美式咖啡", "coffee", 2800),
        Sku("CAPPUCCINO", "卡布奇诺", "coffee", 3200),
        Sku("FLAT-WHITE", "馥芮白", "coffee", 3400),
        Sku("MOCHA", "摩卡", "coffee", 3500),
        Sku("COLD-BREW", "冷萃咖啡", "coffee", 3300),
        Sku("OAT-LATTE", "燕麦拿铁", "coffee", 3600),
        Sku("OSMANTHUS-LATTE", "桂花拿铁", "coffee", 3800),
    ],
    "bakery": [
        Sku("CROISSANT", "可颂", "bakery", 1800),
        Sku("BAGEL", "贝果", "bakery", 1600),
        Sku("CHEESECAKE", "芝士蛋糕", "bakery", 3200),
        Sku("MUFFIN", "蓝莓玛芬", "bakery", 1500),
        Sku("SANDWICH", "火腿芝士三明治", "bakery", 3800),
        Sku("EGG-TART", "葡式蛋挞", "bakery", 1200),
    ],
    "coffee_beans": [
        Sku("BEANS-YUNNAN-250", "云南保山咖啡豆 250g", "coffee_beans", 8800),
        Sku("BEANS-ETHIOPIA-250", "埃塞俄比亚耶加雪菲 250g", "coffee_beans", 11800),
        Sku("BEANS-HOUSE-1KG", "门店拼配咖啡豆 1kg", "coffee_beans", 26800),
        Sku("DRIP-BAGS-10", "挂耳咖啡 10 包", "coffee_beans", 6800),
    ],
    "merchandise": [
        Sku("MUG-CERAMIC", "陶瓷马克杯", "merchandise", 12800),
        Sku("TUMBLER-STEEL", "不锈钢随行杯", "merchandise", 16800),
        Sku("POUR-OVER-SET", "手冲咖啡套装", "merchandise", 22800),
    ],
    "gift_card": [
        Sku("GIFT-CARD-100", "礼品卡 ¥100", "gift_card", 10000),
        Sku("GIFT-CARD-200", "礼品卡 ¥200", "gift_card", 20000),
        Sku("GIFT-CARD-500", "礼品卡 ¥500", "gift_card", 50000),
    ],
}

# Taste (issue 14 item 6): each member belongs to one of three segments that prefer some
# items of each category, so that purchase histories have a structure that recommendations
# can learn (before, every item of a category was equally likely for everyone). A member
# picks from their segment's favourites TASTE_SHARE of the time, else any item as before.
TASTE_SEGMENTS: list[dict[str, list[str]]] = [
    {  # milk coffee and pastries
        "coffee": ["LATTE", "FLAT-WHITE", "OAT-LATTE"],
        "bakery": ["CROISSANT", "BAGEL"],
        "coffee_beans": ["BEANS-YUNNAN-250", "DRIP-BAGS-10"],
        "merchandise": ["MUG-CERAMIC"],
    },
    {  # black coffee and brewing at home
        "coffee": ["AMERICANO", "COLD-BREW"],
        "bakery": ["SANDWICH", "BAGEL"],
        "coffee_beans": ["BEANS-ETHIOPIA-250", "BEANS-HOUSE-1KG"],
        "merchandise": ["POUR-OVER-SET"],
    },
    {  # sweet tooth
        "coffee": ["MOCHA", "CAPPUCCINO", "OSMANTHUS-LATTE"],
        "bakery": ["CHEESECAKE", "MUFFIN", "EGG-TART"],
        "coffee_beans": ["DRIP-BAGS-10"],
        "merchandise": ["TUMBLER-STEEL"],
    },
]
TASTE_SHARE = 0.75
PERSONALISATION_SHARE = 65  # % of members who consent to personalised suggestions

# Spring Festival (正月初一) dates; the demo looks them up for its history window.
SPRING_FESTIVAL = {
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
}

TAGS = ["咖啡爱好者", "上班族", "学生", "烘焙控", "宝妈", "健身达人", "夜猫子", "手冲玩家"]
# Local opening hours and how busy each hour is (morning rush, lunch, afternoon break).
HOURS = [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
HOUR_WEIGHTS = [4, 10, 9, 5, 4, 7, 8, 6, 7, 6, 4, 3, 3, 2, 1]
RESERVED_PHONE_PREFIX = "1390000"  # left free for the API walkthrough in docs/
ADJUST_REASONS_PLUS = ["小票遗失，补录积分", "系统故障补偿", "顾客投诉服务补偿", "活动积分补发"]
ADJUST_REASONS_MINUS = ["重复补录更正", "误操作积分扣回"]
CANCEL_REASONS = ["顾客改变主意", "门店缺货，积分退回", "兑换错误"]
MIGRATION_REASON = "旧会员卡积分迁移"  # balance carried over from the old stamp-card scheme
# How members behave (see Builder._plan_members): orders per month ~ Gamma(shape, scale);
# the share that joins at launch; how joins grow (day = days * u**GROWTH; 0.5 is a
# linearly growing pace); the share that stops coming; anonymous orders per member order.
RATE_SHAPE, RATE_SCALE = 0.75, 0.65
LAUNCH_COHORT = 0.2
GROWTH = 0.4
CHURN_SHARE = 0.3
ANONYMOUS_SHARE = 0.25
REDEEM_CHANCE = 0.2  # after an order, a member with 500+ points may redeem something


@dataclass
class Persona:
    """A future member and how they behave."""

    index: int
    name: str
    gender: str
    phone: str
    birthday: date
    store: Store
    channel: str  # join channel, also their favourite ordering channel
    rate: float  # orders per month
    corporate: bool
    joined_at: datetime
    churn_at: datetime | None
    email: str | None
    tags: list[str]
    consents: dict[str, bool]
    opening: int = 0  # points carried over from the old card scheme (launch cohort)
    member_id: int = 0
    member_path: str = ""


@dataclass
class Stats:
    joined: int = 0
    orders: int = 0
    anonymous: int = 0
    returns: int = 0
    redemptions: int = 0
    cancellations: int = 0
    adjustments: int = 0
    migrated: int = 0
    versions: int = 0
    tier_reviews: list[str] = field(default_factory=list)


@dataclass(order=True)
class _Event:
    at: datetime
    seq: int
    run: Callable[[Session], None] = field(compare=False)


@contextmanager
def _restored_clock() -> Iterator[None]:
    """Time-travel inside; the caller's clock (frozen in tests, real in the CLI) after."""
    state = clock.snapshot()
    try:
        yield
    finally:
        clock.restore(state)


def run(
    db: Database,
    *,
    members: int = DEFAULT_MEMBERS,
    months: int = DEFAULT_MONTHS,
    seed: int = 7,
    reset: bool = False,
    console: Console,
) -> None:
    """Build the demo world (or, when it exists and ``reset`` is false, describe it)."""
    if members < 1 or months < 1:
        raise ValueError("members and months must be at least 1")
    if reset:
        _wipe(db)
    with db.transaction() as s:
        exists = org.get_hq(s) is not None
    if exists:
        console.print(
            "[bold]Demo data already exists[/]: showing it (use [bold]--reset[/] to rebuild)."
        )
    else:
        started = monotonic()
        with _restored_clock():
            Builder(db, members=members, months=months, seed=seed, console=console).build()
        # habits (issue 12): check-ins and streaks, badges, challenges, leaderboards
        with db.transaction() as s:
            suggested = try_member(s)
        habits_demo.seed(db, suggested.split()[0] if suggested else None, seed=seed)
        fraud_demo.seed(db)  # fraud controls (issue 13): rules, held orders, a frozen member
        console.print(f"demo built in {monotonic() - started:.1f}s")
        _analytics(db)  # the console's analytics section has a computed run (issue 10/9)
        _backtest(db)  # the backtest page: member day at 3× instead of 2× (issue 15 item 8)
    # Back at the caller's "now": run what became due once, as the scheduler would.
    reports = jobs.run_due(db)
    due = ", ".join(f"{r.job} {r.members}" for r in reports if r.members)
    if due:
        console.print(f"jobs due now were run (members: {due})")
    with db.transaction() as s:
        users = staff.ensure_demo_users(s)  # a no-op when they exist
    summary(db, console)
    demo_journeys.report(db, console)  # journeys (issue 14)
    with db.transaction() as s:
        issued = access.create_key(
            s, name=f"演示密钥 {clock.now():%Y-%m-%d %H:%M:%S}", scope="hq", access="read_write"
        )
    how_to_use(db, console, users, issued.secret)


def _analytics(db: Database) -> None:
    """One computed run of the console's analytics section (HQ, today vs 90 days ago)."""
    from loyalist.insights import service as insights
    from loyalist.insights import tasks as insight_tasks

    with db.transaction() as s:
        hq = org.get_hq(s)
        assert hq is not None
        tz = ZoneInfo(programmes.active(s)[1].timezone)
        today = clock.now().astimezone(tz).date()
        actor = Actor(name="system:demo", scope_path=hq.path, can_write=True, principal="system")
        run_id = insights.request_run(
            s, actor, as_of=today, compare_from=today - timedelta(days=90)
        ).id
    insight_tasks.compute_now(db, run_id)


BACKTEST_LABEL = "会员日 3 倍积分（原 2 倍），近 6 个月"


def member_day_3x(document: dict[str, Any]) -> dict[str, Any]:
    """The programme ``document`` with the Wednesday member day at 3× instead of 2×."""
    doc = yaml.safe_load(yaml.safe_dump(document, allow_unicode=True))  # a deep copy
    for c in doc["earning"]["campaigns"]:
        if c["code"] == "member-day":
            c["multiplier"] = "3"
    return dict(doc)


def _backtest(db: Database) -> None:
    """Queue the backtest the demo shows: the active programme with member day at 3× over
    the last 6 months (the worker of ``loyalist serve`` computes it)."""
    from loyalist.backtest import tasks as backtests

    with db.transaction() as s:
        hq = org.get_hq(s)
        assert hq is not None
        actor = Actor(name="system:demo", scope_path=hq.path, can_write=True, principal="system")
        proposed = member_day_3x(programmes.as_document(programmes.active(s)[1]))
        backtests.request(s, actor, proposed, 6, BACKTEST_LABEL)


def how_to_use(
    db: Database, console: Console, users: list[tuple[str, str, str, str]], key: str
) -> None:
    """Where to look: the console logins, the member page with a member to try, the API."""
    settings = get_settings()
    base = f"http://{settings.host}:{settings.port}"
    with db.transaction() as s:
        units = {u.code: u.name for u in s.scalars(select(OrgUnit))}
        member = try_member(s)
    say = console.print
    say()
    say(f"[bold]Staff console[/]  {base}/admin", highlight=False, soft_wrap=True)
    t = Table(show_header=True, box=None, pad_edge=False)
    t.add_column("role")
    t.add_column("login")
    t.add_column("password")
    t.add_column("scope")
    for login, password, role, code in users:
        t.add_row(role, login, password, units.get(code, code))
    say(t)
    say(  # privacy2: the liability page and a member's export/erasure (issue 13)
        f"  points liability (HQ): {base}/admin/liability · a member's data: "
        "Export data / Erase personal data on a member's page (HQ admin)",
        highlight=False,
        soft_wrap=True,
    )
    say()
    say(f"[bold]Member page[/]    {base}/m", highlight=False, soft_wrap=True)
    if member is not None:
        say(f"  try member {member}", highlight=False, soft_wrap=True)
    if settings.dev_inbox:
        say(
            f"  one-time sign-in codes arrive in the development inbox: {base}/m/dev/inbox",
            highlight=False,
            soft_wrap=True,
        )
    else:
        say(
            "  one-time sign-in codes are written to the server log "
            "(LOYALIST_DEV_INBOX=true shows them at /m/dev/inbox)",
            highlight=False,
            soft_wrap=True,
        )
    say()
    say("[bold]REST API[/] (a new HQ key is made on every run; it is shown once):")
    say(f"  base URL: {base}   docs: {base}/docs", highlight=False, soft_wrap=True)
    say(f"export LOYALIST_KEY={key}", highlight=False, soft_wrap=True)


def try_member(s: Session) -> str | None:
    """A member worth signing in as: silver or gold with points to redeem, else the member
    with the most points. "13812345678 (name, tier, N points)"."""
    _v, programme = programmes.active(s)
    levels = [t.code for t in programme.tiers.levels]
    names = {t.code: t.name for t in programme.tiers.levels}
    q = (
        select(Member.phone, Member.name, Member.tier_code, PointsAccount.available)
        .join(PointsAccount, PointsAccount.owner_member_id == Member.id)
        .where(Member.phone.is_not(None))
    )
    row = None
    for code in reversed(levels[1:3]):
        row = s.execute(
            q.where(Member.tier_code == code, PointsAccount.available >= 3000)
            .order_by(Member.id)
            .limit(1)
        ).first()
        if row is not None:
            break
    if row is None:
        row = s.execute(q.order_by(PointsAccount.available.desc(), Member.id).limit(1)).first()
    if row is None:
        return None
    phone, name, tier, available = row
    shown = str(phone).removeprefix("+86")  # as typed on the member page
    return f"{shown} ({name}, {names.get(tier, tier)}, {int(available):,} points)"


def _wipe(db: Database) -> None:
    """Drop every row: delete the SQLite file, or truncate the PostgreSQL tables."""
    if db.dialect == "sqlite":
        path = db.url.split("///", 1)[-1]
        db.dispose()
        if path and path != ":memory:":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(path + suffix).unlink(missing_ok=True)
        upgrade(db.url)
        return
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Builder:
    """Plans the members and replays the history day by day through the services."""

    def __init__(
        self, db: Database, *, members: int, months: int, seed: int, console: Console
    ) -> None:
        self.db = db
        self.n_members = members
        self.months = months
        self.rng = random.Random(seed)
        self.seed = seed
        self._taste_rng: dict[int, random.Random] = {}  # issue 14: each member's own stream
        self.coupon_rng = random.Random(seed * 7919 + 12)  # coupons (issue 12): own stream
        self.welcome: dict[int, str] = {}  # member id -> unused welcome code
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.console = console
        self.stats = Stats()
        self.end = clock.now()
        self.base_doc = yaml.safe_load(PROGRAMME_FILE.read_text(encoding="utf-8"))
        self.tz: ZoneInfo = programmes.parse(self.base_doc).tz
        self.end_day = local_day(self.tz, self.end)
        self.start_day = add_months(self.end_day, -months)
        self.start = start_of_local_day(self.tz, self.start_day)
        self.programme: Programme = self._calendar(self.start_day.year)
        self.paths: dict[str, str] = {}
        self.member_paths: dict[int, str] = {}
        self.tier_rank = {t.code: i for i, t in enumerate(self.programme.tiers.levels)}
        self.returns: dict[date, list[_Event]] = {}
        self.later: dict[date, list[_Event]] = {}
        self.seq = 0
        self.order_seq: dict[str, int] = {}
        self.hq_path = "/"
        self.journey_seconds = 0.0  # journeys (issue 14)
        self.referral_replay = ReferralReplay(seed, self._later)  # referrals (issue 12)

    # ── setup ───────────────────────────────────────────────────────────────────────────
    def _calendar(self, year: int) -> Programme:
        """programme.yaml with the dated campaigns (双十一, 春节) of ``year`` and the next."""
        doc = yaml.safe_load(yaml.safe_dump(self.base_doc))  # a deep copy
        earning = doc["earning"]
        dated = {c["code"]: c for c in earning["campaigns"] if c.get("date_from")}
        campaigns = [c for c in earning["campaigns"] if not c.get("date_from")]
        for y in (year, year + 1):
            if "double-11" in dated:
                campaigns.append(
                    {
                        **dated["double-11"],
                        "code": f"double-11-{y}",
                        "name": f"{y} 双十一 (11.11) 三倍积分",
                        "name_en": f"{y} Singles' Day triple points",
                        "date_from": date(y, 11, 11),
                        "date_to": date(y, 11, 11),
                    }
                )
            sf = SPRING_FESTIVAL.get(y)
            if sf is not None and "spring-festival" in dated:
                campaigns.append(
                    {
                        **dated["spring-festival"],
                        "code": f"spring-festival-{y}",
                        "name": f"{y} 春节加赠 88 积分 (限时)",
                        "name_en": f"{y} Spring Festival 88 bonus points",
                        "date_from": sf - timedelta(days=3),
                        "date_to": sf + timedelta(days=5),
                    }
                )
        earning["campaigns"] = campaigns
        return programmes.parse(doc)

    def _publish(self, s: Session, year: int, note: str) -> None:
        """HQ publishes the campaign calendar (a new programme version when it changed)."""
        self.programme = self._calendar(year)
        _pv, created = programmes.apply(s, self.programme, actor="admin", note=note)
        self.stats.versions += int(created)

    def build(self) -> None:
        clock.freeze(self.start - timedelta(days=1))
        with self.db.transaction() as s:
            hq = org.create_unit(s, code=HQ[0], name=HQ[1], kind="hq")
            for code, name in REGIONS:
                org.create_unit(s, code=code, name=name, kind="region", parent_code=HQ[0])
            for st in STORES:
                unit = org.create_unit(
                    s, code=st.code, name=st.name, kind="store", parent_code=st.region
                )
                self.paths[st.code] = unit.path
            staff.ensure_demo_users(s)
            self._publish(s, self.start_day.year, "会员计划上线")
            self.referral_replay.publish(s)  # referral rules and campaigns (issue 12)
            self.hq_path = hq.path
        # The old card system's import, named as the operators call it (it shows on pages).
        self.migration = Actor(
            name="旧会员卡迁移", scope_path=self.hq_path, principal="demo:migration"
        )
        self.actors = {
            ch: Actor(name=f"integration:{ch}", scope_path=self.hq_path, principal=f"demo:{ch}")
            for ch in ("pos", "app", "miniprogram")
        }
        with self.db.transaction() as s:  # coupons (issue 12)
            demo_coupons.setup(s, self.actors["pos"])
        personas = self._plan_members()
        self.shared = Shared(self.seed, self._later, self.actors["app"])  # issues 13, 15
        self.shared.plan(personas, self.start, self.end)
        self._replay(personas)
        self.console.print(f"journeys: {self.journey_seconds:.1f}s")  # journeys (issue 14)
        with self.db.transaction() as s:  # coupons (issue 12)
            demo_coupons.finish(
                s, self.actors["app"], s.scalars(select(Member).order_by(Member.id))
            )
        # channels (issue 14): a day of messages, delivered, held and suppressed
        demo_messages.build(self.db, self.tz, self.end_day)
        with self.db.transaction() as s:  # assist and group campaigns under way (issue 12)
            self.referral_replay.viral_samples(s, self.actors["miniprogram"])
        with self.db.transaction() as s:  # a pending invitation, a duplicate pair (13, 15)
            self.shared.finish(s)

    def _plan_members(self) -> list[Persona]:
        rng, fake = self.rng, self.fake
        days = (self.end_day - self.start_day).days + 1
        phones: set[str] = set()
        emails: set[str] = set()
        weights = [st.weight for st in STORES]
        out: list[Persona] = []
        for i in range(self.n_members):
            female = rng.random() < 0.56
            name = fake.name_female() if female else fake.name_male()
            gender = "female" if female else "male"
            if rng.random() < 0.03:
                gender = "unknown"
            phone = ""
            while not phone or phone in phones or phone.startswith(RESERVED_PHONE_PREFIX):
                phone = str(fake.phone_number())
                if len(phone) != 11 or phone[1] not in "3456789":
                    phone = ""
            phones.add(phone)
            age = int(rng.triangular(18, 62, 28))
            birthday = date(self.end_day.year - age, rng.randint(1, 12), rng.randint(1, 28))
            store = rng.choices(STORES, weights)[0]
            channel = rng.choices(["pos", "miniprogram", "app"], [0.5, 0.3, 0.2])[0]
            corporate = rng.random() < 0.012
            # Orders per month: most members come now and then, a few every other day.
            rate = min(max(rng.gammavariate(RATE_SHAPE, RATE_SCALE), 0.05), 20.0)
            if corporate:
                rate = rng.uniform(2.0, 6.0)
            # The launch cohort joins in the first three weeks, migrated from the old
            # stamp-card scheme with their balance; the rest arrive at a growing pace.
            u = rng.random()
            migrated = rng.random() < LAUNCH_COHORT
            day = int(u * min(21, days)) if migrated else min(days - 1, int(days * u**GROWTH))
            opening = 0
            if migrated and rng.random() < 0.7:
                opening = min(max(int(round(rng.gammavariate(1.2, 1200), -1)), 100), 20000)
            joined = self._at(self.start_day + timedelta(days=day))
            if joined >= self.end:
                joined = self.end - timedelta(minutes=rng.randint(5, 300))
            joined = max(joined, self.start + timedelta(hours=7))
            churn = (
                joined + timedelta(days=rng.expovariate(1 / 150))
                if rng.random() < CHURN_SHARE
                else None
            )
            email: str | None = None
            if rng.random() < 0.3:
                candidate = str(fake.free_email())
                if candidate not in emails:
                    emails.add(candidate)
                    email = candidate
            tags = rng.sample(TAGS, k=rng.choice([0, 1, 1, 2, 3]))
            if corporate:
                tags.append("企业客户")
            consents = {"sms": rng.random() < 0.6, "wechat": rng.random() < 0.7}
            if email:
                consents["email"] = rng.random() < 0.5
            if channel == "app":
                consents["push"] = rng.random() < 0.55
            out.append(
                Persona(
                    index=i,
                    name=str(name),
                    gender=gender,
                    phone=phone,
                    birthday=birthday,
                    store=store,
                    channel=channel,
                    rate=rate,
                    corporate=corporate,
                    joined_at=joined,
                    churn_at=churn,
                    email=email,
                    tags=tags,
                    consents=consents,
                    opening=opening,
                )
            )
        out.sort(key=lambda p: (p.joined_at, p.index))
        return out

    def _at(self, d: date) -> datetime:
        """A plausible shop time on local day ``d`` (aware UTC)."""
        hour = self.rng.choices(HOURS, HOUR_WEIGHTS)[0]
        local = datetime.combine(d, time(hour, self.rng.randint(0, 59), self.rng.randint(0, 59)))
        return local.replace(tzinfo=self.tz).astimezone(self.start.tzinfo)

    # ── the calendar ───────────────────────────────────────────────────────────────────
    def _spring_festival(self, d: date) -> int | None:
        """Days from 正月初一 when ``d`` is within three weeks of it, else None."""
        sf = SPRING_FESTIVAL.get(d.year) or SPRING_FESTIVAL.get(d.year + 1)
        for year in (d.year, d.year + 1):
            sf = SPRING_FESTIVAL.get(year)
            if sf is not None and -21 <= (d - sf).days <= 8:
                return (d - sf).days
        return None

    def _factor(self, d: date) -> float:
        """How busy day ``d`` is relative to an ordinary weekday."""
        f = [1.0, 1.0, 1.3, 1.0, 1.05, 1.2, 1.1][d.weekday()]  # Wednesday: member day
        md = (d.month, d.day)
        if md == (11, 11):
            f *= 2.8
        elif d.month == 11 and d.day < 11:
            f *= 1.15
        elif md == (12, 12):
            f *= 1.4
        elif md == (6, 18):
            f *= 1.6
        elif md in ((12, 24), (12, 25), (2, 14), (5, 20)):
            f *= 1.35
        elif d.month == 10 and d.day <= 7:
            f *= 0.8  # national-day golden week: offices empty
        sf = self._spring_festival(d)
        if sf is not None:
            f *= 1.3 if sf < -1 else 0.5  # gifts before 春节, then everyone goes home
        if d.month in (7, 8):
            f *= 1.05
        return f

    def _tilt(self, d: date) -> dict[str, float]:
        """Extra weight on gift-ish baskets on shopping festivals."""
        tilt = {"beans": 1.0, "merch": 1.0, "gift": 1.0}
        if d.month == 11 and d.day <= 11:
            tilt = {"beans": 3.0, "merch": 3.0, "gift": 1.5}
        elif d.month == 12 and 10 <= d.day <= 25:
            tilt = {"beans": 1.5, "merch": 2.5, "gift": 2.0}
        sf = self._spring_festival(d)
        if sf is not None and sf < -1:
            tilt = {"beans": 2.5, "merch": 1.5, "gift": 4.0}
        return tilt

    # ── replay ─────────────────────────────────────────────────────────────────────────
    def _replay(self, personas: list[Persona]) -> None:
        rng = self.rng
        days = (self.end_day - self.start_day).days + 1
        joins: dict[date, list[Persona]] = {}
        for p in personas:
            joins.setdefault(local_day(self.tz, p.joined_at), []).append(p)
        active: list[Persona] = []
        evaluation = self.programme.tiers.evaluation
        period = period_of(evaluation, self.tz, self.start)[0]
        # journeys (issue 14): the standard journeys over the last weeks of the history
        journey_demo = demo_journeys.JourneyDemo(self.db)
        journeys_from = local_day(self.tz, demo_journeys.start_day(self.end, self.start))
        anon_per_member_order = ANONYMOUS_SHARE / (1 - ANONYMOUS_SHARE)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        ) as bar:
            task = bar.add_task("replaying history (days)", total=days, info="")
            for n in range(days):
                d = self.start_day + timedelta(days=n)
                day_start = start_of_local_day(self.tz, d)
                label = period_of(evaluation, self.tz, day_start)[0]
                if label != period:
                    period = label
                    self._tier_review(day_start)
                # Expiry and reminders just after midnight, as the scheduler would.
                clock.freeze(day_start + timedelta(minutes=2))
                jobs.expire_points(self.db)
                if self._reminders_due(day_start):
                    jobs.remind_expiring(self.db)
                if d >= journeys_from:  # journeys (issue 14): publish, then daily triggers
                    if not journey_demo.started:
                        clock.freeze(day_start + timedelta(minutes=5))
                        journey_demo.publish(self.console)
                    journey_demo.morning(day_start + timedelta(minutes=10))
                if (d.month, d.day) == (12, 1) and n > 0:  # next year's campaign calendar
                    clock.freeze(day_start + timedelta(hours=10))
                    with self.db.transaction() as s:
                        self._publish(s, d.year, f"{d.year + 1} 年活动日历")
                events: list[_Event] = []
                day_end = min(start_of_local_day(self.tz, d + timedelta(days=1)), self.end)
                factor = self._factor(d)
                tilt = self._tilt(d)
                for p in joins.get(d, []):
                    events.append(self._event(p.joined_at, self._joiner(p)))
                    if rng.random() < 0.75:
                        first = p.joined_at + timedelta(minutes=rng.randint(1, 12))
                        if first < day_end:
                            events.append(self._event(first, self._order_fn(p, d, tilt)))
                    active.append(p)
                expected = 0.0  # member orders expected today
                for p in active:
                    if p.churn_at is not None and p.churn_at < day_start:
                        continue
                    lam = p.rate / 30.4 * factor
                    expected += lam
                    for _ in range(_poisson(rng, lam)):
                        at = self._at(d)
                        if p.joined_at < at < day_end:
                            events.append(self._event(at, self._order_fn(p, d, tilt)))
                for _ in range(_poisson(rng, max(expected, 1.0) * anon_per_member_order)):
                    at = self._at(d)
                    if at < day_end:
                        events.append(self._event(at, self._order_fn(None, d, tilt)))
                for _ in range(_poisson(rng, self.n_members * 0.0004)):
                    if active:
                        at = self._at(d)
                        who = rng.choice(active)
                        if who.joined_at < at < day_end:
                            events.append(self._event(at, self._adjust_fn(who)))
                events.extend(self.returns.pop(d, []))
                events.extend(self.later.pop(d, []))
                events.sort()
                with self.db.transaction() as s:
                    clock.freeze(day_start + timedelta(minutes=1))
                    self._activate(s)
                    for ev in events:
                        if ev.at >= self.end:
                            continue
                        clock.freeze(ev.at)
                        ev.run(s)
                        # ledger.lock() reloads the account row: flush its changes first.
                        s.flush()
                if journey_demo.started:  # journeys (issue 14): consumer and due jobs
                    journey_demo.evening(day_start, day_end - timedelta(seconds=1))
                    self.journey_seconds = journey_demo.seconds
                bar.update(
                    task,
                    advance=1,
                    info=f"{d:%Y-%m-%d} · {self.stats.joined:,} members · "
                    f"{self.stats.orders:,} orders",
                )

    def _event(self, at: datetime, fn: Callable[[Session], None]) -> _Event:
        self.seq += 1
        return _Event(at, self.seq, fn)

    def _later(self, at: datetime, fn: Callable[[Session], None]) -> None:
        if at < self.end:
            self.later.setdefault(local_day(self.tz, at), []).append(self._event(at, fn))

    def _activate(self, s: Session) -> None:
        """What the activation and expiry jobs would do at the start of the day."""
        now = clock.now()
        for mid in ledger.stale_pending_members(s, now, 1_000_000):
            acct = ledger.lock(s, mid, self.member_paths[mid])
            ledger.activate_due(s, acct)
        s.flush()

    def _tier_review(self, day_start: datetime) -> None:
        """The periodic tier review of every member, as of the end of the period just past.

        The same service call as the ``tiers`` job, in one transaction instead of one per
        member (the job's small transactions are for a live system; here nobody waits).
        """
        now = day_start + timedelta(seconds=30)
        clock.freeze(now)
        changes = 0
        with self.db.transaction() as s:
            version, programme = programmes.active(s)
            evaluation = programme.tiers.evaluation
            label, _start, end = period_domain.previous_period(evaluation, self.tz, now)
            at = min(end, now)
            ids = tiers.members_to_reevaluate(s, label, 0, len(self.member_paths) + 1)
            for member in s.scalars(select(Member).where(Member.id.in_(ids))):
                if tiers.reevaluate_member(s, member, programme, version, at, label):
                    changes += 1
        self.stats.tier_reviews.append(f"{label}: {changes} change(s)")

    def _reminders_due(self, day_start: datetime) -> bool:
        """Whether an expiry reminder falls due today (the job would find nothing else).

        The reminder job only acts on the day a lot reaches one of the programme's
        reminder offsets (30 and 7 days before expiry); on other days it would only look.
        """
        with self.db.transaction() as s:
            expiries = s.scalars(
                select(PointsLot.expires_at)
                .where(
                    PointsLot.status.in_([ledger.AVAILABLE, ledger.PENDING]),
                    PointsLot.expires_at > day_start,
                )
                .distinct()
            ).all()
        today = local_day(self.tz, day_start)
        days = self.programme.points.reminder_days
        return any(
            local_day(self.tz, e - timedelta(microseconds=1)) - timedelta(days=n) == today
            for e in expiries
            if e is not None
            for n in days
        )

    # ── what happens ───────────────────────────────────────────────────────────────────
    def _joiner(self, p: Persona) -> Callable[[Session], None]:
        def join(s: Session) -> None:
            identities: list[IdentityIn] = []
            if p.channel == "miniprogram":
                openid = "o" + "".join(self.rng.choices(_OPENID, k=27))
                identities.append(IdentityIn(kind="wechat_openid", value=openid))
            elif p.channel == "app":
                identities.append(IdentityIn(kind="app_id", value=f"APP{p.index + 1:08d}"))
            else:
                identities.append(IdentityIn(kind="pos_card", value=f"8860{p.index + 1:012d}"))
            data = MemberCreate.model_validate(
                {
                    "phone": p.phone,
                    "email": p.email,
                    "name": p.name,
                    "birthday": p.birthday,
                    "gender": p.gender,
                    "city": p.store.city,
                    "home_store": p.store.code,
                    "join_channel": p.channel,
                    "tags": p.tags,
                    "consents": p.consents,
                    "identities": identities,
                    # a friend's code for some (issue 12)
                    "referral_code": self.referral_replay.code_for_new_member(s),
                }
            )
            joined = members.create(s, self.actors[p.channel], data)
            p.member_id = joined.member.id
            self.shared.after_join(s, p)  # households: before anything is earned (issue 13)
            self.welcome[p.member_id] = demo_coupons.welcome(
                s, self.actors[p.channel], joined.member
            )
            self.referral_replay.after_join(s, p.member_id)  # as the consumer would
            if (p.index * 7919 + self.seed) % 100 < PERSONALISATION_SHARE:  # issue 14 item 6
                consent_ledger.append(
                    s,
                    p.member_id,
                    "personalisation",
                    "any",
                    True,
                    text_version="demo-v1",
                    source=p.channel,
                    actor=self.actors[p.channel].name,
                )
            p.member_path = joined.member.org_path
            self.member_paths[p.member_id] = p.member_path
            self.stats.joined += 1
            if p.opening:
                members.adjust_points(
                    s,
                    self.migration,
                    p.member_id,
                    p.opening,
                    MIGRATION_REASON,
                    approved_by="总部会员运营",
                )
                self.stats.migrated += 1

        return join

    def _taste(self, p: Persona | None, category: str, pick: Sku) -> Sku:
        """``pick`` (drawn as before, so the main random stream is unchanged), or often one
        of the member's segment's favourites (a random stream of the member's own)."""
        if p is None:
            return pick
        prng = self._taste_rng.get(p.index)
        if prng is None:
            prng = self._taste_rng[p.index] = random.Random(f"taste:{self.seed}:{p.index}")
        favourites = TASTE_SEGMENTS[p.index % len(TASTE_SEGMENTS)].get(category)
        if not favourites or prng.random() >= TASTE_SHARE:
            return pick
        code = prng.choice(favourites)
        return next(sku for sku in MENU[category] if sku.code == code)

    def _basket(self, p: Persona | None, tilt: dict[str, float]) -> list[tuple[Sku, int, int]]:
        rng = self.rng
        kinds = ["coffee", "breakfast", "bakery", "beans", "merch", "gift", "group"]
        if p is not None and p.corporate:
            weights = [0.2, 0.05, 0.0, 0.15, 0.05, 0.25, 0.3]
        else:
            weights = [0.6, 0.18, 0.06, 0.06, 0.025, 0.012, 0.04]
        weights[3] *= tilt["beans"]
        weights[4] *= tilt["merch"]
        weights[5] *= tilt["gift"]
        kind = rng.choices(kinds, weights)[0]
        items: list[tuple[Sku, int]] = []
        if kind in ("coffee", "breakfast"):
            items.append(
                (
                    self._taste(p, "coffee", rng.choice(MENU["coffee"])),
                    rng.choices([1, 2], [0.8, 0.2])[0],
                )
            )
            if kind == "breakfast" or rng.random() < 0.2:
                items.append((self._taste(p, "bakery", rng.choice(MENU["bakery"])), 1))
        elif kind == "bakery":
            items.append((self._taste(p, "bakery", rng.choice(MENU["bakery"])), rng.randint(1, 3)))
        elif kind == "beans":
            items.append(
                (
                    self._taste(p, "coffee_beans", rng.choice(MENU["coffee_beans"])),
                    rng.choices([1, 2, 3], [6, 3, 1])[0],
                )
            )
            if rng.random() < 0.5:
                items.append((self._taste(p, "coffee", rng.choice(MENU["coffee"])), 1))
        elif kind == "merch":
            items.append((self._taste(p, "merchandise", rng.choice(MENU["merchandise"])), 1))
            if rng.random() < 0.4:
                items.append((self._taste(p, "coffee_beans", rng.choice(MENU["coffee_beans"])), 1))
        elif kind == "gift":
            qty = rng.randint(2, 10) if p is not None and p.corporate else 1
            items.append((self._taste(p, "gift_card", rng.choice(MENU["gift_card"])), qty))
        else:  # an office order
            for sku in rng.sample(MENU["coffee"], k=rng.randint(2, 4)):
                items.append((sku, rng.randint(1, 4)))
            if rng.random() < 0.5:
                items.append(
                    (self._taste(p, "bakery", rng.choice(MENU["bakery"])), rng.randint(2, 6))
                )
        out: list[tuple[Sku, int, int]] = []
        for i, (sku, qty) in enumerate(items):
            discount = 0
            if i == 0 and sku.category != "gift_card" and rng.random() < 0.06:
                discount = min(500, sku.price * qty)  # a ¥5 coupon
            out.append((sku, qty, discount))
        return out

    def _order_fn(
        self, p: Persona | None, d: date, tilt: dict[str, float]
    ) -> Callable[[Session], None]:
        def order(s: Session) -> None:
            if p is not None and not p.member_id:
                return
            self._order(s, p, d, tilt)

        return order

    def _order(self, s: Session, p: Persona | None, d: date, tilt: dict[str, float]) -> None:
        rng = self.rng
        if p is None:
            store = rng.choices(STORES, [st.weight for st in STORES])[0]
            channel = "pos"
        else:
            store = p.store
            if rng.random() < 0.15:
                near = [st for st in STORES if st.city == p.store.city] or STORES
                store = rng.choice(near)
            channel = p.channel if rng.random() < 0.7 else rng.choice(["pos", "app", "miniprogram"])
            if d.weekday() == 2 and channel == "pos" and rng.random() < 0.3:
                channel = "miniprogram"  # member day is promoted in the mini-programme
        basket = self._basket(p, tilt)
        gross = sum(sku.price * q - disc for sku, q, disc in basket)
        points_paid = 0
        if p is not None and channel != "pos" and rng.random() < 0.05:
            available = ledger.get_account(s, p.member_id).available
            want = 1000 if available >= 1000 else 500
            if available >= want and gross > want:
                points_paid = want  # 100 points = ¥1
        prefix = {"pos": f"POS-{store.code}", "app": "APP", "miniprogram": "WX"}[channel]
        key = f"{prefix}-{d:%Y%m%d}"
        self.order_seq[key] = self.order_seq.get(key, 0) + 1
        external_id = f"{key}-{self.order_seq[key]:04d}"
        now = clock.now()
        data = OrderCreate(
            external_id=external_id,
            member_id=p.member_id if p is not None else None,
            store=store.code,
            channel=channel,
            occurred_at=now,
            currency="CNY",
            amount_paid_minor=gross - points_paid,
            points_paid=points_paid,
            lines=[
                LineIn(
                    sku=sku.code,
                    category=sku.category,
                    quantity=q,
                    unit_price_minor=sku.price,
                    discount_minor=disc,
                )
                for sku, q, disc in basket
            ],
        )
        recorded = self._record_with_coupon(s, p, data, basket, channel)  # coupons (issue 12)
        self.referral_replay.after_order(s, recorded.id, recorded.member_id)  # issue 12
        self.stats.orders += 1
        if p is None:
            self.stats.anonymous += 1
        if rng.random() < 0.03:
            self._plan_return(recorded.id, external_id, basket, now, channel)
        if p is not None and rng.random() < REDEEM_CHANCE:
            self._maybe_redeem(s, p, store, channel, now)

    def _record_with_coupon(
        self,
        s: Session,
        p: Persona | None,
        data: OrderCreate,
        basket: list[tuple[Sku, int, int]],
        channel: str,
    ) -> Order:
        """The order, with the member's welcome coupon on it some of the time (issue 12)."""
        code = self.welcome.get(p.member_id) if p is not None and p.member_id else None
        off = demo_coupons.welcome_discount(
            (sku.category, sku.price * q - d) for sku, q, d in basket
        )
        if code and off and data.amount_paid_minor >= off and self.coupon_rng.random() < 0.6:
            with_coupon = data.model_copy(
                update={
                    "amount_paid_minor": data.amount_paid_minor - off,
                    "coupon_minor": off,
                    "coupons": [code],
                }
            )
            try:
                with s.begin_nested():
                    done = orders.record(s, self.actors[channel], with_coupon).order
                assert p is not None
                self.welcome.pop(p.member_id, None)
                return done
            except LoyalistError:  # expired meanwhile: the order goes through without it
                pass
        return orders.record(s, self.actors[channel], data).order

    def _plan_return(
        self,
        order_id: int,
        external_id: str,
        basket: list[tuple[Sku, int, int]],
        at: datetime,
        channel: str,
    ) -> None:
        rng = self.rng
        when = at + timedelta(days=rng.choice([0, 1, 1, 2, 3, 5, 9, 14]), hours=rng.randint(1, 8))
        partial = [(no, q) for no, (_sku, q, _d) in enumerate(basket, start=1)]
        full = (len(basket) == 1 and basket[0][1] == 1) or rng.random() < 0.4
        if full:
            data = ReturnCreate(return_id=f"R-{external_id}", full=True, occurred_at=when)
        else:
            no, q = rng.choice(partial)
            data = ReturnCreate(
                return_id=f"R-{external_id}",
                lines=[ReturnLineIn(line_no=no, quantity=rng.randint(1, q))],
                occurred_at=when,
            )

        def give_back(s: Session) -> None:
            with s.begin_nested():
                orders.record_return(s, self.actors[channel], order_id, data)
                self.referral_replay.after_return(s, order_id)  # issue 12
            self.stats.returns += 1

        if when < self.end:
            self.returns.setdefault(local_day(self.tz, when), []).append(
                self._event(when, give_back)
            )

    def _maybe_redeem(
        self, s: Session, p: Persona, store: Store, channel: str, at: datetime
    ) -> None:
        rng = self.rng
        available = ledger.get_account(s, p.member_id).available
        if available < 500:
            return
        member = s.get(Member, p.member_id)
        assert member is not None
        rank = self.tier_rank.get(member.tier_code, 0)
        choices = [
            r
            for r in self.programme.rewards
            if r.points <= available and self.tier_rank.get(r.min_tier or "", 0) <= rank
        ]
        if not choices:
            return
        spec = rng.choices(choices, [math.sqrt(r.points) for r in choices])[0]
        reward = rewards.get_reward(s, spec.code)
        if not rewards.eligibility(s, self.programme, member, reward, available).ok:
            return
        try:
            with s.begin_nested():
                red = rewards.redeem(
                    s,
                    self.actors[channel],
                    RedemptionCreate(member_id=p.member_id, reward=spec.code, store=store.code),
                )
        except LoyalistError:
            return
        self.stats.redemptions += 1
        if rng.random() < 0.04:
            reason = rng.choice(CANCEL_REASONS)
            rid = red.id

            def cancel(s: Session) -> None:
                with s.begin_nested():
                    rewards.cancel(s, self.actors[channel], rid, RedemptionCancel(reason=reason))
                self.stats.cancellations += 1

            self._later(at + timedelta(hours=rng.randint(1, 30)), cancel)

    def _adjust_fn(self, p: Persona) -> Callable[[Session], None]:
        def adjust(s: Session) -> None:
            if not p.member_id:
                return
            rng = self.rng
            clerk = Actor(
                name=f"staff:{p.store.code}",
                scope_path=self.paths[p.store.code],
                principal=f"staff:{p.store.code}",
            )
            points = rng.choice([100, 200, 300, 500])
            reason = rng.choice(ADJUST_REASONS_PLUS)
            if rng.random() < 0.25:
                if ledger.get_account(s, p.member_id).available < points:
                    return
                points, reason = -points, rng.choice(ADJUST_REASONS_MINUS)
            try:
                with s.begin_nested():
                    members.adjust_points(
                        s,
                        clerk,
                        p.member_id,
                        points,
                        reason,
                        approved_by=f"店长 {p.store.code}" if abs(points) >= 300 else None,
                    )
            except LoyalistError:
                return  # e.g. the points were spent or expired a moment ago
            self.stats.adjustments += 1

        return adjust


_OPENID = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def summary(db: Database, console: Console) -> None:
    """What the database holds: members by tier, orders, returns, points, ledger check."""
    with db.transaction() as s:
        _v, programme = programmes.active(s)
        names = {t.code: t.name for t in programme.tiers.levels}
        stores = s.scalar(select(func.count()).select_from(OrgUnit).where(OrgUnit.kind == "store"))
        n_members = s.scalar(select(func.count()).select_from(Member)) or 0
        by_tier = {
            str(k): int(v)
            for k, v in s.execute(select(Member.tier_code, func.count()).group_by(Member.tier_code))
        }
        n_orders = s.scalar(select(func.count()).select_from(Order)) or 0
        anonymous = s.scalar(
            select(func.count()).select_from(Order).where(Order.member_id.is_(None))
        )
        sales = s.scalar(select(func.coalesce(func.sum(Order.amount_paid_minor), 0))) or 0
        by_status = {
            str(k): int(v)
            for k, v in s.execute(select(Order.status, func.count()).group_by(Order.status))
        }
        n_returns = s.scalar(select(func.count()).select_from(OrderReturn))
        redemptions = {
            str(k): int(v)
            for k, v in s.execute(
                select(Redemption.status, func.count()).group_by(Redemption.status)
            )
        }
        kinds = {
            k: (int(a or 0), int(p or 0))
            for k, a, p in s.execute(
                select(
                    LedgerEntry.kind,
                    func.sum(LedgerEntry.delta_available),
                    func.sum(LedgerEntry.delta_pending),
                ).group_by(LedgerEntry.kind)
            )
        }
        balance = s.execute(
            select(
                func.coalesce(func.sum(PointsAccount.available), 0),
                func.coalesce(func.sum(PointsAccount.pending), 0),
                func.coalesce(func.sum(PointsAccount.debt), 0),
            )
        ).one()
        n_events = s.scalar(select(func.count()).select_from(OutboxEvent))
        versions = programmes.list_versions(s)
        checked, problems = ledger.verify(s)
        # trust (issue 13): this month's liability statement, reconciled with the ledger
        from loyalist.kit.actor import SYSTEM as _SYSTEM
        from loyalist.liability import service as liability

        liab = liability.report(s, _SYSTEM, clock.now().astimezone(programme.tz).strftime("%Y-%m"))
        referral_stats = demo_referrals.stats(s)  # issue 12
    t = Table(title=f"{programme.name}", show_header=False, title_justify="left")
    t.add_row(
        "programme",
        f"version {versions[-1].version if versions else 0} of {len(versions)} "
        f"(history: {' · '.join(f'v{v.version} {v.created_at:%Y-%m-%d}' for v in versions)})",
    )
    t.add_row("stores", f"{stores} (3 regions)")
    t.add_row("members", f"{n_members:,}")
    t.add_row(
        "orders",
        f"{n_orders:,} ({anonymous:,} anonymous), sales ¥{sales / 100:,.0f}; "
        f"{by_status.get('returned', 0):,} fully and "
        f"{by_status.get('partially_returned', 0):,} partly returned ({n_returns:,} returns)",
    )
    t.add_row(
        "redemptions",
        f"{sum(redemptions.values()):,} ({redemptions.get('cancelled', 0):,} cancelled)",
    )
    t.add_row("referrals", referral_stats)  # issue 12
    with db.transaction() as s:  # households and passes (issues 13, 15)
        t.add_row("shared", shared_summary(s))
    earned = sum(kinds.get("earn", (0, 0)))
    redeemed = -kinds.get("redeem", (0, 0))[0]
    t.add_row(
        "points",
        f"issued {earned:,} · redeemed {redeemed:,} · "
        f"clawed back {-sum(kinds.get('clawback', (0, 0))):,} · "
        f"reversed {sum(kinds.get('reversal', (0, 0))):,} · "
        f"adjusted {sum(kinds.get('adjust', (0, 0))):+,} · "
        f"expired {-kinds.get('expire', (0, 0))[0]:,}",
    )
    t.add_row(
        "balances",
        f"available {int(balance[0]):,} · pending {int(balance[1]):,} · debt {int(balance[2]):,}",
    )
    st = liab.statement
    t.add_row(  # trust (issue 13)
        "liability",
        f"{st.month}: opening {st.opening:,} · earned {st.earned:+,} · redeemed "
        f"{st.redeemed:+,} · expired {st.expired:+,} · adjusted {st.adjusted:+,} · closing "
        f"{st.closing:,} (¥{liability.money(st.closing, st.value_minor_per_100_points) / 100:,.2f}"
        f"); {'reconciles with the ledger' if st.reconciles else 'DOES NOT RECONCILE'}; "
        f"expected breakage {liab.expected_breakage:,} ({liab.breakage_rate:.1%})",
    )
    t.add_row(
        "tiers",
        " · ".join(f"{names[c]} {by_tier.get(c, 0):,}" for c in names),
    )
    t.add_row("events", f"{n_events:,} in the outbox")
    t.add_row("messages", demo_messages.summary(db))  # channels (issue 14)
    with db.transaction() as s:  # habits (issue 12)
        h = habits_demo.summary(s)
    t.add_row(
        "habits",
        f"{h['checkins']:,} check-ins · {h['badges']:,} badges earned · "
        f"{h['periods']:,} leaderboard periods archived (the worker computes badges and "
        "boards from the event stream)",
    )
    t.add_row(
        "ledger",
        f"[green]verified[/]: {checked:,} accounts, cache = entries = lots"
        if not problems
        else f"[red]{len(problems)} disagreement(s)[/]",
    )
    console.print(t)
