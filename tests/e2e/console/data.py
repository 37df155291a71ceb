"""A small shop for console tests: staff users of every role, members in four stores, orders,
a return, a redemption. Written through the services, at simulated instants before ``now``
(the process clock is frozen at each instant, as the demo builder does)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import yaml
from tests.support import DEMO_PROGRAMME, build_world

from loyalist.jobs import service as jobs
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import clock
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.order import service as orders
from loyalist.order.schemas import LineIn, OrderCreate, ReturnCreate, ReturnLineIn
from loyalist.programme import service as programmes
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCreate
from loyalist.staff import service as staff

PASSWORD = "console-pass-1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# login, role, org unit
USERS = [
    ("admin", "hq_admin", "hq"),
    ("admin2", "hq_admin", "hq"),
    ("east", "regional_manager", "east"),
    ("south", "regional_manager", "south"),
    ("sh1", "store_staff", "sh1"),
    ("sz1", "store_staff", "sz1"),
    ("agent", "service_agent", "hq"),
    ("analyst", "analyst", "hq"),
]
# key, phone, name, home store
MEMBERS = [
    ("alice", "13800000001", "王小丽", "sh1"),
    ("bob", "13800000002", "李明", "sh2"),
    ("carol", "13800000003", "陈静", "sz1"),
    ("dan", "13800000004", "赵强", "gz1"),
]
# member key (None: a guest), store, days before now, amount paid (fen), sku, category
ORDERS: list[tuple[str | None, str, int, int, str, str]] = [
    ("alice", "sh1", 20, 128_00, "BEANS-ETH", "coffee_beans"),
    ("alice", "sh1", 9, 36_00, "LATTE", "coffee"),
    ("alice", "sh1", 3, 58_00, "CROISSANT", "bakery"),
    ("bob", "sh2", 15, 42_00, "LATTE", "coffee"),
    ("bob", "sh2", 4, 12_500_00, "GIFT-BOX", "gifts"),
    ("carol", "sz1", 12, 66_00, "CAKE", "bakery"),
    ("carol", "sz1", 2, 30_00, "AMERICANO", "coffee"),
    ("dan", "gz1", 6, 88_00, "BEANS-ETH", "coffee_beans"),
    (None, "sh1", 5, 25_00, "LATTE", "coffee"),
    (None, "sh2", 7, 19_00, "AMERICANO", "coffee"),
    (None, "sz1", 8, 33_00, "CAKE", "bakery"),
    (None, "gz1", 1, 45_00, "LATTE", "coffee"),
]


@dataclass
class Shop:
    members: dict[str, int] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)  # key -> +86… as stored
    orders: dict[str, int] = field(default_factory=dict)  # external id -> id
    redemption_id: int = 0
    keys: dict[str, str] = field(default_factory=dict)  # API keys per scope (tests.support)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def programme_doc() -> dict[str, Any]:
    """The demo programme without date-bound campaigns, so points do not depend on the day
    the test runs."""
    doc: dict[str, Any] = yaml.safe_load(DEMO_PROGRAMME.read_text(encoding="utf-8"))
    doc["earning"]["campaigns"] = []
    return doc


_argon2 = staff.hash_password


@functools.cache
def _hash_once(password: str) -> str:
    return _argon2(password)


def seed(db: Database, now: datetime | None = None) -> Shop:
    """The standard world (tests.support) plus the shop, with history before ``now``."""
    state = clock.snapshot()
    now = (now or clock.now()).replace(microsecond=0)
    shop = Shop(now=now)
    try:
        clock.freeze(now - timedelta(days=40))
        shop.keys = build_world(db).keys
        with db.transaction() as s:
            programmes.apply(s, programmes.parse(programme_doc()), actor="test")
            # argon2 is slow on purpose: hash the shared test password once per process.
            with mock.patch.object(staff, "hash_password", _hash_once):
                for login, role, unit in USERS:
                    staff.create_user(s, login=login, role=role, unit_code=unit, password=PASSWORD)
            for key, phone, name, store in MEMBERS:
                m = members.create(
                    s, SYSTEM, MemberCreate(phone=phone, name=name, home_store=store)
                ).member
                shop.members[key] = m.id
                shop.phones[key] = m.phone or ""
        for i, (who, store, days, paid, sku, category) in enumerate(ORDERS):
            at = now - timedelta(days=days, hours=i % 5)
            clock.freeze(at)
            ext = f"POS-{store.upper()}-{i:03d}"
            line = LineIn(sku=sku, category=category, quantity=2, unit_price_minor=paid // 2)
            with db.transaction() as s:
                rec = orders.record(
                    s,
                    SYSTEM,
                    OrderCreate(
                        external_id=ext,
                        member_id=shop.members[who] if who else None,
                        store=store,
                        occurred_at=at,
                        amount_paid_minor=paid,
                        lines=[line],
                    ),
                )
                shop.orders[ext] = rec.order.id
        clock.freeze(now - timedelta(days=1))
        with db.transaction() as s:
            orders.record_return(
                s,
                SYSTEM,
                shop.orders["POS-SH1-001"],
                ReturnCreate(return_id="RET-1", lines=[ReturnLineIn(line_no=1, quantity=1)]),
            )
            members.adjust_points(s, SYSTEM, shop.members["alice"], 3000, "会员周年礼")
            shop.redemption_id = rewards.redeem(
                s, SYSTEM, RedemptionCreate(member_id=shop.members["alice"], reward="americano")
            ).id
        clock.restore(state)
        clock.freeze(now)
        jobs.activate_pending(db)
    finally:
        clock.restore(state)
    return shop


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m is not None, "no CSRF field on the page"
    return m.group(1)


def sign_in(c: Any, login: str, lang: str = "zh_CN") -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = c.get(f"/admin/login?lang={lang}")
    assert page.status_code == 200
    r = c.post(
        "/admin/login",
        data={"csrf_token": csrf_of(page.text), "login": login, "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    home = c.get("/admin/password")
    assert home.status_code == 200
    return csrf_of(home.text)
