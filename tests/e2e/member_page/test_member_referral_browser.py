"""A member shares their referral code on a phone (375×812, zh-CN): the code, the share link
and the QR code (drawn by the server, it must decode to a real image); a friend opens the
link, the join form carries the code, they join, and the referral is attributed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from tests.e2e.member_page.conftest import PHONE, SCREENSHOTS, InboxServer
from tests.e2e.member_page.test_member_page import MASKED, _fits
from tests.support import build_world

from loyalist import bootstrap
from loyalist.events import consumers
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Member, Referral

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

FRIEND = "13922223333"


@dataclass
class Light:
    url: str
    member_id: int


@pytest.fixture
def light(db_url: str, tmp_path: Path) -> Iterator[Light]:
    """The world and one member (no year of history: this test needs none), served."""
    db = Database(db_url)
    try:
        build_world(db)
        with db.transaction() as s:
            mid = members.create(
                s, SYSTEM, MemberCreate(phone=PHONE, name="林小雨", home_store="sh1")
            ).member.id
    finally:
        db.dispose()
    server = InboxServer(db_url, tmp_path / "server.log")
    server.start()
    try:
        yield Light(server.url, mid)
    finally:
        server.stop()
    assert server.errors_logged() == "", server.errors_logged()


def _code(page: Page, base: str, masked: str) -> str:
    inbox = page.context.new_page()
    try:
        inbox.goto(f"{base}/m/dev/inbox")
        body = inbox.locator(f'li[data-recipient="{masked}"] .body').first.inner_text()
    finally:
        inbox.close()
    found = re.search(r"\b(\d{6})\b", body)
    assert found is not None, body
    return found.group(1)


def test_a_member_shares_their_code_and_a_friend_joins_with_it(
    light: Light, phone_page: Any, browser: Any, db_url: str
) -> None:
    page: Page = phone_page
    page.goto(f"{light.url}/m/signin")
    page.fill("#phone", PHONE)
    page.click("form[action='/m/signin'] button[type=submit]")
    page.fill("#code", _code(page, light.url, MASKED))
    page.click("form[action='/m/signin/code'] button[type=submit]")
    page.wait_for_url(f"{light.url}/m")
    page.click("[data-testid=invite-link]")
    page.wait_for_url(f"{light.url}/m/referral")
    code = page.locator("[data-testid=referral-code]").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Z]{1,32}", code), code
    link = page.locator("[data-testid=referral-link]").input_value()
    assert link == f"{light.url}/m/join?ref={code}"
    qr = page.locator("[data-testid=referral-qr]")
    expect(qr).to_be_visible()
    # The QR image loaded and decoded (a broken image has no natural size).
    size = qr.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert size[0] is True and size[1] > 0 and size[1] == size[2], size
    _fits(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "member-referral.png"), full_page=True)

    friend_ctx = browser.new_context(
        viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    try:
        friend = friend_ctx.new_page()
        friend.set_default_timeout(15_000)
        friend.goto(link)
        expect(friend.locator("#referral")).to_have_value(code)
        friend.fill("#phone", FRIEND)
        friend.check("input[name=terms]")
        friend.click("form[data-testid=join] button[type=submit]")
        friend.fill("#code", _code(friend, light.url, "+86139****3333"))
        friend.click("button[type=submit]")
        friend.wait_for_url(re.compile(r"/m\?joined=1$"))
    finally:
        friend_ctx.close()

    db = Database(db_url)
    try:
        bootstrap.configure()
        consumers.run_pending(db)  # what the worker does (it may have done it already)
        with db.transaction() as s:
            new = s.scalar(select(Member).where(Member.referral_code == code))
            assert new is not None
            r = s.scalar(select(Referral).where(Referral.referred_id == new.id))
            assert r is not None
            assert (r.referrer_id, r.status, r.channel) == (
                light.member_id,
                "attributed",
                "join",
            )
    finally:
        db.dispose()
