"""The operator's first hour in Chromium (zh-CN, 1280 px), against a real server: create a
staff user and disable them (their open session ends), create a member, top up a reward's
stock, and collect a redemption by its counter code once (a second time is refused)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from tests.e2e.console.conftest import Live, new_page, shoot, sign_in

from loyalist.models import Member, Reward

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _submit(page: Any, form: str) -> None:
    page.once("dialog", lambda d: d.accept())  # data-confirm forms ask first
    page.locator(form).locator("button[type=submit]").first.click()
    page.wait_for_load_state("networkidle")


def test_operator_creates_and_disables_staff_creates_a_member_and_tops_up(
    live: Live, page: Any, browser: Any
) -> None:
    sign_in(page, live, "admin", "/admin/staff")
    expect(page.locator("h1")).to_have_text("员工账号")
    form = page.locator("form[data-testid=staff-create]")
    form.locator("#s-login").fill("new.clerk")
    form.locator("#s-role").select_option("store_staff")
    form.locator("#s-unit").select_option("sh1")
    form.locator("#s-password").fill("clerk-pass-2026")
    _submit(page, "form[data-testid=staff-create]")
    expect(page.locator(".notice")).to_have_text("员工账号已创建。")
    row = page.locator('tr[data-login="new.clerk"]')
    expect(row).to_contain_text("门店店员")

    # the new clerk signs in in another browser
    clerk = new_page(browser)
    try:
        clerk.goto(f"{live.url}/admin/login?next=/admin/members")
        clerk.fill("#login", "new.clerk")
        clerk.fill("#password", "clerk-pass-2026")
        clerk.click("button[type=submit]")
        clerk.wait_for_load_state("networkidle")
        assert clerk.url.endswith("/admin/members"), clerk.url

        # the admin disables them: their next page is the login page
        row.locator("summary").click()
        page.once("dialog", lambda d: d.accept())
        row.locator("form[action$='/disable'] button").click()
        page.wait_for_load_state("networkidle")
        expect(page.locator(".notice")).to_have_text("员工账号已停用；其登录会话已失效。")
        expect(page.locator('tr[data-login="new.clerk"]')).to_contain_text("已停用")
        shoot(page, "staff-users")
        clerk.goto(f"{live.url}/admin/members")
        assert "/admin/login" in clerk.url, clerk.url
    finally:
        clerk.context.close()

    # a member, with the API's validation: a bad phone first, then a good one
    page.goto(f"{live.url}/admin/members")
    page.click("a[href='/admin/members/new']")
    page.fill("#n-phone", "12345")
    _submit(page, "form[data-testid=member-create]")
    expect(page.locator('[data-error="phone"]')).to_be_visible()
    page.fill("#n-phone", "13900009999")
    page.fill("#n-name", "周新")
    page.select_option("#n-store", "sh1")
    page.check("input[name=consent_sms]")
    _submit(page, "form[data-testid=member-create]")
    expect(page.locator(".notice")).to_have_text("会员已创建。")
    with live.db.transaction() as s:
        m = s.scalar(select(Member).where(Member.phone == "+8613900009999"))
        assert m is not None and m.name == "周新"

    # stock top-up, no new programme version
    page.goto(f"{live.url}/admin/rewards")
    reward_row = page.locator("tr[data-reward=latte]")
    before = int(reward_row.locator("[data-testid=remaining]").inner_text().replace(",", ""))
    reward_row.locator("input[name=quantity]").fill("120")
    reward_row.locator("button").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".notice")).to_have_text("库存已补充。")
    expect(page.locator("tr[data-reward=latte] [data-testid=remaining]")).to_have_text(
        f"{before + 120:,}"
    )
    shoot(page, "reward-stock")
    with live.db.transaction() as s:
        latte = s.scalar(select(Reward).where(Reward.code == "latte"))
        assert latte is not None and latte.stock_added == 120


def test_a_redemption_code_is_collected_once_and_refused_the_second_time(
    live: Live, page: Any
) -> None:
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {live.shop.keys['hq']}"}
    ) as c:
        alice = live.shop.members["alice"]
        r = c.post(f"/v1/members/{alice}/adjustments", json={"points": 5000, "reason": "e2e"})
        assert r.status_code in (201, 202), r.text
        red = c.post("/v1/redemptions", json={"member_id": alice, "reward": "latte"}).json()
    code = red["code"]
    sign_in(page, live, "sh1", "/admin/redemptions")
    for attempt in ("collected", "redemption_already_collected"):
        page.fill("#collect-code", code.lower().replace("-", " "))
        page.locator("form[data-testid=collect-by-code] button").click()
        page.wait_for_load_state("networkidle")
        expect(page.locator("[data-testid=collect-notice]")).to_have_attribute("data-code", attempt)
    expect(page.locator("[data-testid=collect-notice]")).to_have_text("已拒绝：该兑换已核销过。")
    expect(page.locator(f'tr[data-redemption-id="{red["id"]}"] td[data-state]')).to_have_attribute(
        "data-state", "collected"
    )
    shoot(page, "redemption-collect")
