"""A new customer joins on the member page at 375×812 (zh-CN): from the sign-in page to
the join form, consents and a referral code, the one-time code from the development
inbox, and their own page — nothing scrolls sideways."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from tests.e2e.member_page.conftest import SCREENSHOTS, Live
from tests.e2e.member_page.test_member_page import _fits

from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.models import Member

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

NEW = "13911112222"
MASKED_NEW = "+86139****2222"


def _code(page: Page, base: str) -> str:
    inbox = page.context.new_page()
    try:
        inbox.goto(f"{base}/m/dev/inbox")
        body = inbox.locator(f'li[data-recipient="{MASKED_NEW}"] .body').first.inner_text()
    finally:
        inbox.close()
    found = re.search(r"\b(\d{6})\b", body)
    assert found is not None, body
    return found.group(1)


def test_a_customer_joins_on_a_phone(live: Live, phone_page: Any, db_url: str) -> None:
    page: Page = phone_page
    page.goto(f"{live.url}/m/signin")
    page.click("[data-testid=join-link]")
    expect(page.locator("h1")).to_have_text("成为会员")
    _fits(page)
    page.fill("#phone", NEW)
    page.check("input[name=consent_sms]")
    page.check("input[name=consent_wechat]")
    page.fill("#referral", "FRIEND-42")
    page.check("input[name=terms]")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "member-join.png"))
    page.click("form[data-testid=join] button[type=submit]")
    expect(page.locator("h1")).to_have_text("输入验证码")
    _fits(page)
    page.fill("#code", _code(page, live.url))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/m\?joined=1$"))
    _fits(page)
    db = Database(db_url)
    try:
        with db.transaction() as s:
            m = s.scalar(select(Member).where(Member.phone == "+86" + NEW))
            assert m is not None and m.referral_code == "FRIEND-42"
            assert members.consents(s, m.id) == {
                "sms": True,
                "email": False,
                "push": False,
                "wechat": True,
            }
    finally:
        db.dispose()
