"""The member page in Chromium at 375×812: a member signs in with a one-time code read
from the development inbox, sees the tier progress bar, redeems a reward after a
confirmation step and sees the balance drop by the reward's points; no page scrolls
sideways; the language switch and the browser's language both work. Screenshots of the
main pages go to docs/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from tests.e2e.member_page.conftest import PHONE, SCREENSHOTS, Live

from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import MemberSession, Redemption, Reward

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

MASKED = "+86138****5678"


def _fits(page: Page) -> None:
    """Nothing is wider than the 375-px screen: the page cannot scroll sideways."""
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]"
    )
    assert widths[2] == 375, (
        page.url,
        "content wider than the screen widened the viewport",
        widths,
    )
    assert widths[0] <= 375 and widths[1] <= 375, (page.url, widths)
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
            .filter(e => getComputedStyle(e).position !== 'fixed')
            .map(e => e.tagName + '.' + e.className)"""
    )
    assert overflowing == [], (page.url, overflowing)


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def _points(n: int) -> str:
    return f"{n:,}"


def _read_code(page: Page, base: str) -> str:
    inbox = page.context.new_page()
    try:
        inbox.goto(f"{base}/m/dev/inbox")
        body = inbox.locator(f'li[data-recipient="{MASKED}"] .body').first.inner_text()
    finally:
        inbox.close()
    found = re.search(r"\b(\d{6})\b", body)
    assert found is not None, body
    return found.group(1)


def _available(url: str, member_id: int) -> int:
    db = Database(url)
    try:
        with db.transaction() as s:
            return ledger.get_account(s, member_id).available
    finally:
        db.dispose()


def _count(url: str, model: Any) -> int:
    db = Database(url)
    try:
        with db.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        db.dispose()


def _reward_points(url: str, code: str) -> int:
    db = Database(url)
    try:
        with db.transaction() as s:
            return int(s.scalar(select(Reward.points).where(Reward.code == code)) or 0)
    finally:
        db.dispose()


def test_a_member_signs_in_and_redeems_a_reward_on_a_phone(
    live: Live, phone_page: Page, db_url: str
) -> None:
    page, base, seeded = phone_page, live.url, live.seeded
    before = seeded.available
    assert before == _available(db_url, seeded.member_id) and before > 2000

    # Signed out, /m leads to the sign-in form (in Chinese: the browser asks for zh-CN).
    page.goto(f"{base}/m")
    expect(page).to_have_url(f"{base}/m/signin")
    expect(page.locator("h1")).to_have_text("会员登录")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    _fits(page)
    _shot(page, "member-page-signin.png")

    # Phone, then the code from the development inbox.
    page.fill("#phone", PHONE)
    page.click("form[action='/m/signin'] button[type=submit]")
    expect(page.locator("h1")).to_have_text("输入验证码")
    expect(page.locator(".hero")).to_contain_text("138 **** 5678")  # national format
    _fits(page)
    assert _count(db_url, MemberSession) == 0
    page.fill("#code", _read_code(page, base))
    page.click("form[action='/m/signin/code'] button[type=submit]")
    expect(page).to_have_url(f"{base}/m")
    assert _count(db_url, MemberSession) == 1

    # Home: balance, pending, tier with its progress bar, expiring points, rewards.
    expect(page.get_by_test_id("balance")).to_have_text(_points(before))
    expect(page.get_by_test_id("pending")).to_have_text(_points(seeded.pending))
    expect(page.get_by_test_id("tier")).to_have_text("普通会员")
    bar = page.locator("#tier [role=progressbar]")
    expect(bar).to_be_visible()
    pct = seeded.spend_12m * 100 // 1000_00  # towards Silver at ¥1,000
    expect(bar).to_have_attribute("aria-valuenow", str(pct))
    fill = bar.locator("span")
    track_w = bar.bounding_box()["width"]  # type: ignore[index]
    fill_w = fill.bounding_box()["width"]  # type: ignore[index]
    assert abs(fill_w / track_w - pct / 100) < 0.02, (fill_w, track_w, pct)
    missing = (1000_00 - seeded.spend_12m) // 100
    expect(page.get_by_test_id("missing")).to_have_text(f"再消费 ¥{missing} 即可升级为银卡会员")
    expect(page.locator("#benefits")).to_contain_text("每消费 ¥1 获得 1 积分")
    expect(page.locator("#expiring li").first).to_contain_text("到期")
    expect(page.locator("#recent li")).to_have_count(3)
    _fits(page)
    _shot(page, "member-page.png")

    # The catalogue: what the balance covers comes first.
    page.locator(".tabbar a[href='/m/rewards']").click()
    expect(page).to_have_url(f"{base}/m/rewards")
    expect(page.get_by_test_id("balance")).to_have_text(_points(before))
    latte = page.locator("li[data-reward='latte']")
    expect(latte).to_contain_text("拿铁一杯")
    expect(latte).to_contain_text("2,000 积分")
    _fits(page)
    _shot(page, "member-page-rewards.png")

    # Redeem: a confirmation step first; nothing is spent until it is confirmed.
    cost = _reward_points(db_url, "latte")
    latte.get_by_role("link", name="兑换").click()
    expect(page).to_have_url(f"{base}/m/rewards/latte")
    expect(page.get_by_test_id("reward-name")).to_have_text("拿铁一杯")
    expect(page.get_by_test_id("cost")).to_have_text(f"−{_points(cost)}")
    expect(page.get_by_test_id("after")).to_have_text(_points(before - cost))
    _fits(page)
    assert _count(db_url, Redemption) == 0
    assert _available(db_url, seeded.member_id) == before

    page.get_by_role("button", name="确认兑换").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/m/redemptions/\d+$"))
    expect(page.get_by_role("status")).to_have_text("兑换成功：拿铁一杯")
    expect(page.get_by_test_id("balance")).to_have_text(_points(before - cost))
    _fits(page)
    _shot(page, "member-page-redeemed.png")
    assert _count(db_url, Redemption) == 1
    assert _available(db_url, seeded.member_id) == before - cost

    page.get_by_role("link", name="返回我的积分").click()
    expect(page).to_have_url(f"{base}/m")
    expect(page.get_by_test_id("balance")).to_have_text(_points(before - cost))

    # History in words, newest first: the redemption heads it.
    page.locator(".tabbar a[href='/m/history']").click()
    first = page.locator("li.line").first
    expect(first).to_contain_text("兑换 拿铁一杯")
    expect(first).to_contain_text(f"−{_points(cost)}")
    _fits(page)
    _shot(page, "member-page-history.png")

    # Switch to English and back: same page, same numbers, the other language.
    page.goto(f"{base}/m")
    page.locator("nav.lang a[hreflang=en]").click()
    expect(page).to_have_url(f"{base}/m")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#tier h2")).to_have_text("Tier progress")
    expect(page.get_by_test_id("tier")).to_have_text("Member")
    expect(page.get_by_test_id("balance")).to_have_text(_points(before - cost))
    expect(page.get_by_test_id("missing")).to_have_text(f"Spend CN¥{missing} more to reach Silver")
    _fits(page)
    page.locator(".tabbar a[href='/m/rewards']").click()
    expect(page.locator("li[data-reward='latte']")).to_contain_text("Latte")
    page.locator("nav.lang a[hreflang=zh-CN]").click()
    expect(page).to_have_url(f"{base}/m/rewards")
    expect(page.locator("li[data-reward='latte']")).to_contain_text("拿铁一杯")
    assert _count(db_url, Redemption) == 1  # browsing never redeems


def test_the_browser_language_decides_until_the_member_chooses(live: Live, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="en-US")
    try:
        page = context.new_page()
        page.goto(f"{live.url}/m/signin")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("h1")).to_have_text("Member sign-in")
        _fits(page)
        page.locator("nav.lang a[hreflang=zh-CN]").click()
        expect(page).to_have_url(f"{live.url}/m/signin")
        expect(page.locator("h1")).to_have_text("会员登录")
        page.reload()
        expect(page.locator("h1")).to_have_text("会员登录")  # the choice is remembered
    finally:
        context.close()


def test_an_unknown_number_is_told_the_same_and_no_code_is_kept(
    live: Live, phone_page: Page, db_url: str
) -> None:
    page = phone_page
    page.goto(f"{live.url}/m/signin")
    page.fill("#phone", "13900001111")
    page.click("form[action='/m/signin'] button[type=submit]")
    expect(page.locator("h1")).to_have_text("输入验证码")
    expect(page.locator(".hero")).to_contain_text("139 **** 1111")
    page.goto(f"{live.url}/m/dev/inbox")
    expect(page.locator("li[data-recipient]")).to_have_count(0)
