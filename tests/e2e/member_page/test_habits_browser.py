"""The member page's check-in screen in Chromium at 375×812: a member with a two-day
streak signs in, opens 签到 from the tab bar, checks in, and sees a three-day streak, the
bonus points, a badge, challenge progress and the leaderboard; no page scrolls sideways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.e2e.member_page.conftest import PHONE, Live
from tests.e2e.member_page.test_member_page import _available, _fits, _read_code, _shot

from loyalist.documents import service as documents
from loyalist.habits import service as habits
from loyalist.habits.schemas import CheckinIn
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import clock
from loyalist.kit.db import Database

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _doc(now: datetime) -> dict[str, Any]:
    return {
        "checkins": {
            "day_start": "04:00",
            "bonuses": [
                {
                    "day": 3,
                    "actions": [
                        {"action": "award_points", "params": {"points": 30, "reason": "连续签到"}}
                    ],
                }
            ],
        },
        "activities": {"checkin": {"points": 5, "per_day": 1}},
        "badges": [
            {
                "code": "three-days",
                "name": {"zh_CN": "三日坚持", "en": "Three days"},
                "icon": "flame",
                "criteria": {"gte": {"streak": 3}},
            },
            {
                "code": "ten-days",
                "name": {"zh_CN": "十日坚持", "en": "Ten days"},
                "criteria": {"gte": {"streak": 10}},
            },
        ],
        "challenges": [
            {
                "code": "week-5",
                "name": {"zh_CN": "一周签到 5 次", "en": "Five check-ins"},
                "starts_at": (now - timedelta(days=5)).isoformat(),
                "ends_at": (now + timedelta(days=5)).isoformat(),
                "counter": "checkins",
                "goal": 5,
            }
        ],
        "leaderboards": [
            {
                "code": "streaks",
                "name": {"zh_CN": "本月签到榜", "en": "Streaks this month"},
                "metric": "streak",
                "period": "month",
            }
        ],
    }


def _prepare(url: str, member_id: int) -> None:
    """The habits document and two earlier check-ins (yesterday and the day before)."""
    db = Database(url)
    state = clock.snapshot()
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        import loyalist.habits.handlers  # noqa: F401  (the consumer)
        from loyalist.events import consumers

        with db.transaction() as s:
            documents.publish(s, SYSTEM, "habits", _doc(now), note="e2e")
        for days in (2, 1):
            clock.freeze(now - timedelta(days=days))
            with db.transaction() as s:
                habits.check_in(s, SYSTEM, member_id, CheckinIn())
        clock.restore(state)
        while consumers.run_pending(db):
            pass
    finally:
        clock.restore(state)
        db.dispose()


def _drain(url: str) -> None:
    from loyalist.events import consumers

    db = Database(url)
    try:
        while consumers.run_pending(db):
            pass
    finally:
        db.dispose()


def test_a_member_checks_in_on_a_phone(live: Live, phone_page: Page, db_url: str) -> None:
    page, base, seeded = phone_page, live.url, live.seeded
    _prepare(db_url, seeded.member_id)
    before = _available(db_url, seeded.member_id)

    page.goto(f"{base}/m/signin")
    page.fill("#phone", PHONE)
    page.click("form[action='/m/signin'] button[type=submit]")
    page.fill("#code", _read_code(page, base))
    page.click("form[action='/m/signin/code'] button[type=submit]")
    expect(page).to_have_url(f"{base}/m")

    page.locator(".tabbar a[href='/m/habits']").click()
    expect(page).to_have_url(f"{base}/m/habits")
    expect(page.get_by_test_id("streak")).to_have_text("2")
    expect(page.get_by_test_id("challenge-week-5")).to_contain_text("2 / 5 次签到")
    expect(page.locator("#board-streaks")).to_contain_text("本月签到榜")
    _fits(page)

    page.get_by_test_id("checkin-button").click()
    expect(page).to_have_url(f"{base}/m/habits?done=checked")
    expect(page.get_by_role("status")).to_contain_text("签到成功")
    expect(page.get_by_test_id("streak")).to_have_text("3")
    expect(page.get_by_test_id("checked-in")).to_have_text("今日已签到")
    expect(page.get_by_test_id("checkin-button")).to_have_count(0)
    assert _available(db_url, seeded.member_id) == before + 5 + 30

    _drain(db_url)  # the worker's consumer: badge, challenge and board
    page.reload()
    expect(page.get_by_test_id("badge-three-days")).not_to_have_class("badge locked")
    expect(page.get_by_test_id("badge-ten-days")).to_have_class("badge locked")
    expect(page.get_by_test_id("challenge-week-5")).to_contain_text("3 / 5 次签到")
    expect(page.locator("#board-streaks li.me")).to_contain_text("我")
    expect(page.locator("#board-streaks li.me")).to_contain_text("3")
    _fits(page)
    _shot(page, "member-page-habits.png")

    # A second visit the same day cannot check in again (the form is gone; a replayed
    # POST is answered "already").
    page.goto(f"{base}/m/habits")
    expect(page.get_by_test_id("checkin-button")).to_have_count(0)
    page.goto(f"{base}/m/lang/en?next=/m/habits")
    expect(page.get_by_test_id("checked-in")).to_have_text("Checked in today")
    expect(page.locator("#checkin h2")).to_have_text("Daily check-in")
    _fits(page)
    assert _available(db_url, seeded.member_id) == before + 5 + 30
