"""Coupons on a phone (375×812, Chromium): a member signs in, sees an available coupon with
its code, the till validates and redeems it with an order through the API, and the member
sees it used. Screenshot: docs/screenshots/member-page-coupons.png."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from playwright.sync_api import Page, expect
from tests.e2e.member_page.conftest import PHONE, Live
from tests.e2e.member_page.test_member_page import _fits, _read_code, _shot

from loyalist.access import service as access
from loyalist.coupon import service as coupons
from loyalist.coupon.schemas import IssueIn, TemplateCreate
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _setup(url: str, member_id: int) -> tuple[str, str]:
    db = Database(url)
    try:
        with db.transaction() as s:
            coupons.create_template(
                s,
                SYSTEM,
                TemplateCreate.model_validate(
                    {
                        "code": "latte-5",
                        "name": "拿铁立减5元",
                        "name_en": "¥5 off a latte",
                        "kind": "amount_off",
                        "amount_minor": 500,
                        "min_spend_minor": 2000,
                        "valid_days": 14,
                    }
                ),
            )
            issued = coupons.issue_view(s, SYSTEM, member_id, IssueIn(template="latte-5"))[1]
            key = access.create_key(s, name="till", scope="hq").secret
        return issued.code, key
    finally:
        db.dispose()


def test_a_member_sees_a_coupon_used_at_the_till(live: Live, phone_page: Page, db_url: str) -> None:
    page, base, seeded = phone_page, live.url, live.seeded
    code, key = _setup(db_url, seeded.member_id)

    page.goto(f"{base}/m/signin")
    page.fill("#phone", PHONE)
    page.click("form[action='/m/signin'] button[type=submit]")
    page.fill("#code", _read_code(page, base))
    page.click("form[action='/m/signin/code'] button[type=submit]")
    expect(page).to_have_url(f"{base}/m")

    page.click("a#coupons")
    expect(page).to_have_url(f"{base}/m/coupons")
    expect(page.locator("h1")).to_have_text("我的优惠券")
    row = page.locator(f'li[data-coupon="{code}"]')
    expect(row).to_have_attribute("data-status", "available")
    expect(row.get_by_test_id("coupon-code")).to_have_text(code)
    expect(row).to_contain_text("拿铁立减5元")
    _fits(page)
    _shot(page, "member-page-coupons.png")

    # The till: validate the basket, then record the order with the code.
    basket = {
        "store": "sh1",
        "member_id": seeded.member_id,
        "lines": [{"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 3200}],
    }
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as till:
        v = till.post("/v1/coupons/validate", json={**basket, "codes": [code.lower()]})
        assert v.status_code == 200, v.text
        assert (v.json()["valid"], v.json()["amount_due_minor"]) == (True, 2700)
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        order = {
            **basket,
            "external_id": "TILL-COUPON-1",
            "occurred_at": now,
            "amount_paid_minor": 2700,
            "coupon_minor": 500,
            "coupons": [code],
        }
        r = till.post("/v1/orders", json=order, headers={"Idempotency-Key": "till-coupon-1"})
        assert r.status_code == 201, r.text
        again = till.post("/v1/orders", json={**order, "external_id": "TILL-COUPON-2"})
        assert again.status_code == 409 and again.json()["code"] == "coupon_used"

    page.reload()
    used = page.locator(f'#coupons-used li[data-coupon="{code}"]')
    expect(used).to_have_attribute("data-status", "used")
    expect(page.locator("#coupons-available")).not_to_contain_text(code)
    page.click("text=EN")
    expect(page.locator("h1")).to_have_text("My coupons")
    expect(page.locator(f'li[data-coupon="{code}"]')).to_contain_text(re.compile("Used"))
    _fits(page)
