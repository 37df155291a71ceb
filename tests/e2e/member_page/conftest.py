"""A real server with the development inbox, a member with a year of history, and Chromium.

The server runs in a subprocess on the real clock, so the member's history is written
relative to the real "now": the seed freezes this process's clock at each simulated
instant (as the demo builder does) and then runs the activation job once, as the
scheduler would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.server import Server
from tests.support import DEMO_PROGRAMME, build_world

from loyalist.jobs import service as jobs
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import clock
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.order import service as orders
from loyalist.order.schemas import LineIn, OrderCreate
from loyalist.programme import service as programmes

ROOT = Path(__file__).parents[3]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = "13812345678"
E164 = "+86" + PHONE


@dataclass(frozen=True)
class Seeded:
    member_id: int
    available: int
    pending: int
    spend_12m: int  # minor units


def _programme() -> Any:
    """The demo programme with rolling 12-month expiry, so points earned eleven months
    ago expire within the page's 90-day horizon whatever day the test runs."""
    doc: dict[str, Any] = yaml.safe_load(DEMO_PROGRAMME.read_text(encoding="utf-8"))
    doc["points"]["expiry"] = {"kind": "rolling_months", "months": 12}
    doc["earning"]["campaigns"] = []  # earning must not depend on the day the test runs
    return programmes.parse(doc)


# (days before now, amount paid in fen, sku, category)
ORDERS = [
    (335, 128_00, "BEANS-ETH", "coffee_beans"),
    (300, 64_00, "LATTE", "coffee"),
    (120, 96_00, "CAKE", "bakery"),
    (45, 188_00, "GIFT-BOX", "gifts"),
    (12, 72_00, "LATTE", "coffee"),
    (2, 58_00, "CROISSANT", "bakery"),
]


def seed(db_url: str) -> Seeded:
    """The world, then 林小雨's year replayed in time order: orders, each order's points
    activated when its 7-day return window closes (as the scheduler would), and a
    3,000-point anniversary gift from the service team 30 days ago."""
    db = Database(db_url)
    state = clock.snapshot()
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        build_world(db)
        with db.transaction() as s:
            programmes.apply(s, _programme(), actor="test")
        clock.freeze(now - timedelta(days=365))
        with db.transaction() as s:
            mid = members.create(
                s, SYSTEM, MemberCreate(phone=PHONE, name="林小雨", home_store="sh1")
            ).member.id

        def order(i: int, at: datetime, paid: int, sku: str, category: str) -> None:
            with db.transaction() as s:
                orders.record(
                    s,
                    SYSTEM,
                    OrderCreate(
                        external_id=f"POS-{at:%Y%m%d}-{i:03d}",
                        member_id=mid,
                        store="sh1",
                        occurred_at=at,
                        amount_paid_minor=paid,
                        lines=[
                            LineIn(sku=sku, category=category, quantity=1, unit_price_minor=paid)
                        ],
                    ),
                )

        def gift() -> None:
            with db.transaction() as s:
                members.adjust_points(s, SYSTEM, mid, 3000, "会员周年礼")

        events: list[tuple[datetime, Callable[[], None]]] = []
        for i, (days, paid, sku, category) in enumerate(ORDERS):
            at = now - timedelta(days=days, hours=i)
            events.append((at, partial(order, i, at, paid, sku, category)))
            due = at + timedelta(days=8)  # past the 7-day window, however it rounds
            if due < now:
                events.append((due, partial(jobs.activate_pending, db)))
        events.append((now - timedelta(days=30), gift))
        for at, run in sorted(events, key=lambda e: e[0]):
            clock.freeze(at)
            run()
        clock.restore(state)
        with db.transaction() as s:
            acct = ledger.get_account(s, mid)
            return Seeded(mid, acct.available, acct.pending, sum(o[1] for o in ORDERS))
    finally:
        clock.restore(state)
        db.dispose()


class InboxServer(Server):
    """The shared test server with the development inbox switched on."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "LOYALIST_DEV_INBOX": "true"}


@dataclass
class Live:
    url: str
    seeded: Seeded
    server: Server


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:
    seeded = seed(db_url)
    server = InboxServer(db_url, tmp_path / "server.log")
    server.start()
    try:
        yield Live(server.url, seeded, server)
    finally:
        server.stop()
    assert server.errors_logged() == "", server.errors_logged()


@pytest.fixture
def phone_page(browser: Any) -> Iterator[Any]:
    """A 375×812 phone-sized page (2× pixels), Chinese by the browser's language."""
    context = browser.new_context(
        viewport={"width": 375, "height": 812},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
