"""The liability page and a member's erasure in Chromium (privacy2, issue 13 items 3 and 6):
the expiry chart draws the outstanding points the ledger holds; an HQ admin erases a member
through the confirmation step. Screenshots: console-liability.png, console-member-erase.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tests.e2e.console.conftest import Live, figure, shoot, sign_in
from tests.e2e.console.test_console_browser import chart

from loyalist.kit.actor import SYSTEM
from loyalist.liability import service as liability
from loyalist.models import Member

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_liability_chart_and_erasure_through_the_confirmation(live: Live, page: Any) -> None:
    sign_in(page, live, "admin", "/admin/liability")
    page.goto(f"{live.url}/admin/liability")
    with live.db.transaction() as s:
        month = page.get_attribute("#l-month option[selected]", "value")
        assert month is not None
        r = liability.report(s, SYSTEM, month)
    assert figure(page, "[data-kpi=outstanding]") == r.outstanding_points > 0
    assert figure(page, "[data-line=closing]") == r.statement.closing
    drawn = chart(page, "chart-expiry")
    assert sum(drawn["series"][0]) == r.outstanding_points
    shoot(page, "liability")

    alice = live.shop.members["alice"]
    page.goto(f"{live.url}/admin/members/{alice}")
    page.click("[data-testid=erase-link]")
    page.wait_for_selector("[data-testid=erase-confirm]")
    with live.db.transaction() as s:
        m = s.get(Member, alice)
        assert m is not None
        no = m.member_no
    page.fill("#e-no", no)
    shoot(page, "member-erase")
    page.click("[data-testid=erase]")
    page.wait_for_selector("[data-testid=erased]")
    assert page.url.endswith(f"/admin/members/{alice}?notice=erased")
    with live.db.transaction() as s:
        erased = s.scalar(select(Member.erased_at).where(Member.id == alice))
        assert erased is not None
