"""Coupons on the member page (available / used / expired, zh-CN and en) and in the console
(templates with counters, pause, batches, a member's coupons in the 360 view, issuing one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.console import console_client, login, make_users, post
from tests.integration.member_web.conftest import make_member, sign_in
from tests.itest import rows
from tests.support import api_client, order_payload

TEMPLATE = {
    "code": "welcome",
    "name": "新人立减5元",
    "name_en": "¥5 welcome",
    "kind": "amount_off",
    "amount_minor": 500,
    "valid_days": 3,
}


@pytest.fixture
def console(world: Any) -> Iterator[TestClient]:
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def test_member_page_lists_coupons_by_state(
    world: Any, clock: Any, app_client: Callable[..., TestClient]
) -> None:
    person = make_member(world.db, "13812345678")
    with api_client(world.db, world.keys["hq"]) as api:
        assert api.post("/v1/coupon-templates", json=TEMPLATE).status_code == 201
        codes = [
            api.post(f"/v1/members/{person.id}/coupons", json={"template": "welcome"}).json()[
                "code"
            ]
            for _ in range(3)
        ]
        order = {
            **order_payload("m-1", person.id, paid=2500),
            "lines": [
                {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 3000}
            ],
            "coupon_minor": 500,
            "coupons": [codes[0]],
        }
        assert api.post("/v1/orders", json=order).status_code == 201
    clock.advance(timedelta(days=1))
    with api_client(world.db, world.keys["hq"]) as api:
        late = api.post(f"/v1/members/{person.id}/coupons", json={"template": "welcome"}).json()
    clock.advance(timedelta(days=2))  # valid through 12 June: expired
    c = app_client()
    sign_in(c, world.db, person)
    c.cookies.set("loyalist_lang", "zh_CN")
    html = c.get("/m/coupons").text
    assert "我的优惠券" in html and "新人立减5元" in html
    assert f'data-coupon="{codes[0]}" data-status="used"' in html
    assert f'data-coupon="{codes[1]}" data-status="expired"' in html
    assert f'data-coupon="{late["code"]}" data-status="available"' in html
    home = c.get("/m").text
    assert 'href="/m/coupons"' in home
    c.cookies.set("loyalist_lang", "en")
    html = c.get("/m/coupons").text
    assert "My coupons" in html and "¥5 welcome" in html and "Expired" in html
    anon = app_client()
    assert anon.get("/m/coupons").headers["location"] == "/m/signin"


def test_console_templates_batches_and_member_coupons(world: Any, console: TestClient) -> None:
    with api_client(world.db, world.keys["hq"]) as api:
        api.post("/v1/coupon-templates", json=TEMPLATE)
        api.post(
            "/v1/coupon-batches", json={"external_id": "flyers", "template": "welcome", "count": 20}
        )
        mid = api.post("/v1/members", json={"phone": "13900000001"}).json()["id"]
    csrf = login(console, world.db, "admin")
    console.cookies.set("loyalist_lang", "zh_CN")
    html = console.get("/admin/coupons").text
    assert "优惠券" in html and 'data-template="welcome"' in html and 'data-batch="flyers"' in html
    r = post(console, f"/admin/members/{mid}/coupons", csrf, {"template": "welcome"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/admin/members/{mid}?notice=coupon_issued"
    page = console.get(r.headers["location"]).text
    assert (
        'data-testid="member-coupons"' in page and "新人立减5元" in page and "优惠券已发放" in page
    )
    assert rows(world.db, "SELECT source FROM coupon_code WHERE member_id = :m", m=mid) == [
        {"source": "staff"}
    ]
    assert post(console, "/admin/coupons/templates/welcome/pause", csrf).status_code == 303
    assert rows(world.db, "SELECT active FROM coupon_template") in (
        [{"active": False}],
        [{"active": 0}],
    )
    console.cookies.set("loyalist_lang", "en")
    assert "paused" in console.get("/admin/coupons").text
    # a store's staff sees the page but may not pause (programme.publish) nor issue elsewhere
    staff = TestClient(console.app, follow_redirects=False)
    scsrf = login(staff, world.db, "sh1.staff")
    assert post(staff, "/admin/coupons/templates/welcome/activate", scsrf).status_code == 403
    assert rows(world.db, "SELECT active FROM coupon_template") in (
        [{"active": False}],
        [{"active": 0}],
    )
