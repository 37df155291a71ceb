"""What a signed-in member sees and does on /m: balance, pending and expiring points by
programme-local date, tier progress and benefits, rewards with a confirmation step and
idempotent redemption, history in words, and both languages with their formats.

The clock is frozen at 2026-06-10T04:00Z (12:00 in Shanghai, a Wednesday)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.integration.member_web.conftest import (
    Person,
    csrf_of,
    make_member,
    sign_in,
    token_of,
)

from loyalist.kit.actor import SYSTEM
from loyalist.ledger import service as ledger
from loyalist.models import IdempotencyRecord, LedgerEntry, PointsLot, Redemption
from loyalist.order import service as orders
from loyalist.order.schemas import LineIn, OrderCreate

Clients = Callable[..., TestClient]
TUESDAY = datetime(2026, 6, 9, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai: no member-day bonus


def _order(db: Any, who: Person, ref: str, paid: int, at: datetime = TUESDAY) -> None:
    with db.transaction() as s:
        orders.record(
            s,
            SYSTEM,
            OrderCreate(
                external_id=ref,
                member_id=who.id,
                store="sh1",
                occurred_at=at,
                amount_paid_minor=paid,
                lines=[LineIn(sku="LATTE", category="coffee", quantity=1, unit_price_minor=paid)],
            ),
        )


def _count(db: Any, model: Any) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _available(db: Any, who: Person) -> int:
    with db.transaction() as s:
        return ledger.get_account(s, who.id).available


def _text(html: str) -> str:
    """The page's words with tags and runs of white space collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _testid(html: str, name: str) -> str:
    m = re.search(rf'data-testid="{name}"[^>]*>([^<]*)<', html)
    assert m is not None, f"no {name} on the page"
    return m.group(1).strip()


def _signed_in(app_client: Clients, db: Any, who: Person, lang: str = "zh-CN") -> TestClient:
    c = app_client()
    c.headers["Accept-Language"] = lang
    sign_in(c, db, who)
    return c


# -- home ---------------------------------------------------------------------------------


def test_home_shows_balance_pending_and_points_expiring_by_local_date(
    world: Any, app_client: Clients
) -> None:
    db = world.db
    ada = make_member(db, "13812345678", points=500)
    _order(db, ada, "POS-1", 128_00)  # 128 points, pending until 17 June
    # Three lots of 100: two end on the same Shanghai day (2 July) at different instants
    # (one of them still 1 July in UTC), one on 20 July; 500 more expire after 90 days.
    for points, expires in (
        (100, datetime(2026, 7, 1, 17, 30, tzinfo=UTC)),  # 2 July 01:30 in Shanghai
        (100, datetime(2026, 7, 2, 10, 0, tzinfo=UTC)),  # 2 July 18:00
        (100, datetime(2026, 7, 20, 4, 0, tzinfo=UTC)),
    ):
        with db.transaction() as s:
            e = ledger.adjust(
                s,
                ledger.lock(s, ada.id, "/hq/"),
                points,
                ledger.Cause(source_type="staff", actor="test", reason="test"),
                expires_at=expires,
            )
            assert s.scalar(select(PointsLot.expires_at).where(PointsLot.entry_id == e.id))
    c = _signed_in(app_client, db, ada)

    home = c.get("/m")
    assert home.status_code == 200
    assert _testid(home.text, "balance") == "800"
    assert _testid(home.text, "pending") == "128"
    assert _testid(home.text, "expiring-total") == "300"
    expiring = _text(home.text.split('id="expiring">')[1].split("</section>")[0])
    assert expiring.startswith("即将过期 2026年7月2日 到期 200 积分 2026年7月20日 到期 100 积分"), (
        expiring
    )

    en = c.get("/m", headers={"Accept-Language": "en"})
    expiring = _text(en.text.split('id="expiring">')[1].split("</section>")[0])
    assert expiring.startswith(
        "Expiring soon Expires on Jul 2, 2026 200 points Expires on Jul 20, 2026 100 points"
    ), expiring


def test_the_progress_bar_shows_the_way_to_the_next_tier(world: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    _order(db, ada, "POS-1", 250_00)
    c = _signed_in(app_client, db, ada)

    html = c.get("/m").text
    assert _testid(html, "tier") == "普通会员"
    assert 'role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="25"' in html
    assert '<span style="width: 25%"></span>' in html
    assert _testid(html, "progress-value") == "¥250"
    assert _testid(html, "missing") == "再消费 ¥750 即可升级为银卡会员"
    assert 'data-testid="keep"' not in html  # the first tier needs no keeping
    benefits = _text(html.split('id="benefits">')[1].split("</section>")[0])
    assert benefits == (
        "普通会员权益 每消费 ¥1 获得 1 积分 升级银卡会员可解锁 消费积分 1.2 倍 购物享 2% 优惠"
    )

    en = c.get("/m", headers={"Accept-Language": "en"}).text
    assert _testid(en, "progress-value") == "CN¥250"
    assert _testid(en, "missing") == "Spend CN¥750 more to reach Silver"


def test_a_gold_member_sees_gold_benefits_and_what_platinum_adds(
    world: Any, app_client: Clients
) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    _order(db, ada, "POS-1", 3500_00)  # ¥3,500: Gold from ¥3,000, Platinum at ¥8,000
    c = _signed_in(app_client, db, ada)

    html = c.get("/m").text
    assert 'class="member-card tier-2"' in html
    assert _testid(html, "tier") == "金卡会员"
    assert 'aria-valuenow="10"' in html  # (3,500 − 3,000) / (8,000 − 3,000)
    assert _testid(html, "missing") == "再消费 ¥4,500 即可升级为铂金会员"
    benefits = _text(html.split('id="benefits">')[1].split("</section>")[0])
    assert benefits == (
        "金卡会员权益 每消费 ¥1 获得 1 积分 消费积分 1.5 倍 购物享 5% 优惠 免运费 生日礼遇"
        " 升级铂金会员可解锁 消费积分 2 倍 购物享 8% 优惠 优先服务"
    )


def test_home_offers_the_most_valuable_rewards_the_balance_covers(
    world: Any, app_client: Clients
) -> None:
    db = world.db
    ada = make_member(db, "13812345678", points=2600)
    c = _signed_in(app_client, db, ada)
    html = c.get("/m").text
    shown = re.findall(r'class="tile" href="/m/rewards/([a-z0-9-]+)"', html)
    assert shown == ["cake-slice", "latte", "americano", "croissant"]


# -- rewards and redemption -------------------------------------------------------------


def test_redeeming_needs_a_confirmation_and_a_double_submit_redeems_once(
    world: Any, app_client: Clients
) -> None:
    db = world.db
    ada = make_member(db, "13812345678", points=5000)
    c = _signed_in(app_client, db, ada)

    rewards = c.get("/m/rewards").text
    assert 'href="/m/rewards/latte"' in rewards
    confirm = c.get("/m/rewards/latte")
    assert confirm.status_code == 200
    assert _testid(confirm.text, "cost") == "−2,000"
    assert _testid(confirm.text, "balance") == "5,000"
    assert _testid(confirm.text, "after") == "3,000"
    # Looking at the confirmation spends nothing.
    assert (_count(db, Redemption), _available(db, ada)) == (0, 5000)

    form = {"csrf": csrf_of(confirm.text), "token": token_of(confirm.text)}
    first = c.post("/m/rewards/latte/redeem", data=form)
    again = c.post("/m/rewards/latte/redeem", data=form)  # the same form sent twice
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert re.fullmatch(r"/m/redemptions/\d+", first.headers["location"])
    assert _count(db, Redemption) == 1
    assert _available(db, ada) == 3000
    with db.transaction() as s:
        kinds = list(s.scalars(select(LedgerEntry.kind).where(LedgerEntry.member_id == ada.id)))
    assert kinds.count("redeem") == 1

    done = c.get(first.headers["location"])
    assert done.status_code == 200
    assert "兑换成功：拿铁一杯" in done.text
    assert _testid(done.text, "balance") == "3,000"

    # A second, deliberate redemption goes through its own confirmation.
    second = c.get("/m/rewards/latte")
    assert token_of(second.text) != form["token"]
    r = c.post(
        "/m/rewards/latte/redeem",
        data={"csrf": csrf_of(second.text), "token": token_of(second.text)},
    )
    assert r.status_code == 303 and r.headers["location"] != first.headers["location"]
    assert (_count(db, Redemption), _available(db, ada)) == (2, 1000)


def test_a_reward_out_of_reach_cannot_be_redeemed_and_nothing_is_written(
    world: Any, app_client: Clients
) -> None:
    db = world.db
    ada = make_member(db, "13812345678", points=1500)
    c = _signed_in(app_client, db, ada)

    rewards = c.get("/m/rewards").text
    latte = rewards.split('data-reward="latte"')[1].split("</li>")[0]
    assert "还差 500 积分" in _text(latte)
    assert "/m/rewards/latte" not in latte  # no redeem button
    roastery = rewards.split('data-reward="roastery-tour"')[1].split("</li>")[0]
    assert "银卡会员及以上可兑换" in _text(roastery)

    confirm = c.get("/m/rewards/latte")
    assert 'action="/m/rewards/latte/redeem"' not in confirm.text
    why = confirm.text.split('data-testid="why">')[1].split("</div>")[0]
    assert _text(why) == "此礼品当前不可兑换。 还差 500 积分"
    # Posting anyway (an old form, a crafted request) is refused on the server.
    before = (_count(db, Redemption), _count(db, LedgerEntry), _count(db, IdempotencyRecord))
    r = c.post(
        "/m/rewards/latte/redeem",
        data={"csrf": csrf_of(c.get("/m").text), "token": "T" * 24},
    )
    assert r.status_code == 409
    assert "您的积分不足以兑换此礼品。" in r.text
    assert (_count(db, Redemption), _count(db, LedgerEntry)) == before[:2]
    assert _available(db, ada) == 1500
    assert c.get("/m/rewards/no-such-thing").status_code == 404


def test_a_member_cannot_open_another_members_redemption(world: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678", points=5000)
    bob = make_member(db, "13900002222", points=5000)
    a = _signed_in(app_client, db, ada)
    confirm = a.get("/m/rewards/latte")
    done = a.post(
        "/m/rewards/latte/redeem",
        data={"csrf": csrf_of(confirm.text), "token": token_of(confirm.text)},
    )
    url = done.headers["location"]

    b = _signed_in(app_client, db, bob)
    assert b.get(url).status_code == 404
    assert a.get(url).status_code == 200


# -- history ------------------------------------------------------------------------------


def test_history_tells_what_happened_in_plain_words(
    world: Any, clock: Any, app_client: Clients
) -> None:
    db = world.db
    ada = make_member(db, "13812345678", points=3000)
    _order(db, ada, "POS-0609", 88_00)
    c = _signed_in(app_client, db, ada)
    confirm = c.get("/m/rewards/latte")
    c.post(
        "/m/rewards/latte/redeem",
        data={"csrf": csrf_of(confirm.text), "token": token_of(confirm.text)},
    )

    lines = re.findall(r'<li class="line"[^>]*>(.*?)</li>', c.get("/m/history").text, re.S)
    assert [_text(ln) for ln in lines] == [
        "兑换 拿铁一杯 12:00 −2,000",
        "下单获得 88 积分（订单 POS-0609） 待生效 11:00 · 2026年6月17日 生效 +88",
        "客服为您补发积分 12:00 +3,000",
    ]

    en = c.get("/m/history", headers={"Accept-Language": "en"}).text
    lines = re.findall(r'<li class="line"[^>]*>(.*?)</li>', en, re.S)
    assert [_text(ln) for ln in lines] == [
        "Redeemed Latte 12:00 PM −2,000",
        "Earned 88 points on order POS-0609 Pending 11:00 AM · available from Jun 17, 2026 +88",
        "Points added by our service team 12:00 PM +3,000",
    ]
    # Lines run in the order they were recorded, under the day each happened (an order
    # sent in late sits under its own day).
    days = re.findall(r'<div class="day">([^<]+)</div>', en)
    assert days == ["Jun 10, 2026", "Jun 9, 2026", "Jun 10, 2026"]


# -- languages ----------------------------------------------------------------------------


def test_the_language_follows_the_browser_until_the_member_chooses(
    world: Any, app_client: Clients
) -> None:
    c = app_client()
    assert '<html lang="en">' in c.get("/m/signin", headers={"Accept-Language": "en-GB"}).text
    assert '<html lang="zh-CN">' in c.get("/m/signin", headers={"Accept-Language": "zh"}).text
    assert '<html lang="zh-CN">' in c.get("/m/signin", headers={"Accept-Language": "fr"}).text

    chose = c.get("/m/lang/en", params={"next": "/m/signin"})
    assert chose.status_code == 303 and chose.headers["location"] == "/m/signin"
    assert "loyalist_lang=en" in chose.headers["set-cookie"]
    page = c.get("/m/signin", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in page.text
    assert "Member sign-in" in page.text


def test_the_language_switch_only_returns_to_member_pages(app_client: Clients) -> None:
    c = app_client()
    for target, expected in (
        ("/m/rewards", "/m/rewards"),
        ("/m", "/m"),
        ("//evil.example/m", "/m"),
        ("https://evil.example/", "/m"),
        ("/mallory", "/m"),
        ("/m/\\evil.example", "/m"),
        ("/admin", "/m"),
    ):
        r = c.get("/m/lang/zh_CN", params={"next": target})
        assert r.headers["location"] == expected, target
    unknown = c.get("/m/lang/fr")
    assert unknown.status_code == 303 and "set-cookie" not in unknown.headers
