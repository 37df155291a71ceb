"""The staff console in Chromium at 1280 px, against a real server: the journeys of issue 4.

Each test saves screenshots of the pages it walks through to docs/screenshots/ (zh-CN).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import expect
from sqlalchemy import func, select
from tests.e2e.console.conftest import Live, figure, new_page, shoot, sign_in
from tests.e2e.console.data import MEMBERS, ORDERS

from loyalist.models import AuditLog, LedgerEntry, ProgrammeVersion

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHART_DATA = """el => {
  const c = echarts.getInstanceByDom(el);
  if (!c) return null;
  const o = c.getOption();
  return {
    series: o.series.map(s => (s.data || []).map(d => (d && typeof d === 'object') ? d.value : d)),
    canvas: el.querySelectorAll('canvas').length,
  };
}"""


def api(live: Live, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {live.shop.keys[key]}"}
    )


def api_orders(live: Live, key: str) -> list[dict[str, Any]]:
    with api(live, key) as c:
        r = c.get("/v1/orders", params={"limit": 100})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        assert r.json()["next_cursor"] is None
        return items


def chart(page: Any, element_id: str) -> dict[str, Any]:
    page.wait_for_selector(f"#{element_id}[data-ready='1']")
    data = page.eval_on_selector(f"#{element_id}", CHART_DATA)
    assert data is not None, f"no ECharts instance on #{element_id}"
    assert data["canvas"] >= 1, f"#{element_id} drew no canvas"
    return dict(data)


def test_hq_admin_dashboard_member_adjustment_ledger_and_audit(live: Live, page: Any) -> None:
    # Given an HQ admin signed in
    sign_in(page, live, "admin")
    assert page.url.endswith("/admin/dashboard")

    # The dashboard draws its charts from the package (no CDN) with data in them ...
    daily = chart(page, "chart-sales-daily")
    split = chart(page, "chart-sales-split")
    points = chart(page, "chart-points")
    tiers = chart(page, "chart-tiers")
    # ... and the numbers beside them match the REST API.
    orders = api_orders(live, "hq")
    assert len(orders) == len(ORDERS)
    sales = sum(o["amount_paid_minor"] for o in orders)
    member_sales = sum(o["amount_paid_minor"] for o in orders if o["member_id"])
    assert figure(page, "[data-figure=orders]") == len(orders)
    assert figure(page, "[data-figure=sales]") == sales
    assert figure(page, "[data-figure=member_sales]") == member_sales
    assert figure(page, "[data-figure=non_member_sales]") == sales - member_sales
    assert figure(page, "[data-figure=member_orders]") == sum(1 for o in orders if o["member_id"])
    assert figure(page, "[data-kpi=members_total]") == len(MEMBERS)
    assert (
        figure(page, "[data-figure=points_issued]")
        == sum(o["points"]["earned"] for o in orders) + 3000
    )  # the anniversary gift of the seed
    # The charts hold the same figures (in yuan).
    assert round(sum(sum(s) for s in daily["series"]) * 100) == sales
    assert [round(v * 100) for v in split["series"][0]] == [member_sales, sales - member_sales]
    assert points["series"][0][0] == figure(page, "[data-figure=points_issued]")
    assert sum(tiers["series"][0]) == len(MEMBERS)
    # CNY in Chinese: ¥ and 万 for the large total.
    assert re.fullmatch(r"¥[\d.,]+万", page.inner_text("[data-kpi=sales] .value"))
    shoot(page, "dashboard")

    # Find a member by phone.
    page.click("nav >> text=会员")
    page.fill("#phone", "13800000001")
    page.click("form.filters button[type=submit]")
    rows = page.locator("[data-testid=member-results] tbody tr[data-member-id]")
    expect(rows).to_have_count(1)  # swapped in by HTMX
    page.wait_for_url("**/admin/members?*phone=13800000001*")
    # HQ sees the phone, in national format.
    assert page.inner_text("[data-testid=phone]") == "138 0000 0001"
    shoot(page, "members")
    rows.first.locator("a").click()
    alice = live.shop.members["alice"]
    page.wait_for_url(f"**/admin/members/{alice}")
    before = figure(page, "[data-kpi=available]")
    assert page.get_attribute("[data-testid=tier-progress]", "aria-valuenow") is not None
    shoot(page, "member")

    # Adjust points with a reason: without a reason the form says so next to the field.
    page.fill("#a-points", "200")
    page.click("[data-testid=adjust-form] button[type=submit]")
    page.wait_for_selector("[data-error='adjust.reason']")
    assert page.input_value("#a-points") == "200"
    page.fill("#a-reason", "补偿：咖啡洒了")
    page.click("[data-testid=adjust-form] button[type=submit]")
    page.wait_for_selector("[role=status]")
    assert figure(page, "[data-kpi=available]") == before + 200
    first = page.locator("[data-testid=ledger] tbody tr").first
    assert "+200" in first.inner_text() and "补偿：咖啡洒了" in first.inner_text()
    entry_id = int(first.get_attribute("data-entry-id") or 0)
    with live.db.transaction() as s:
        entry = s.get(LedgerEntry, entry_id)
        assert entry is not None
        assert (entry.member_id, entry.kind, entry.delta_available, entry.actor) == (
            alice,
            "adjust",
            200,
            "user:admin",
        )
    with api(live, "hq") as c:
        assert c.get(f"/v1/members/{alice}").json()["points"]["available"] == before + 200

    # The audit trail shows who did it, before and after.
    page.click("nav >> text=操作审计")
    page.select_option("#action", "points.adjust")
    page.fill("#object_id", str(alice))
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("[data-audit-id]")
    audit_rows = page.locator("[data-testid=audit] tbody tr[data-audit-id]")
    top = audit_rows.first.inner_text()
    assert "user:admin" in top and "points.adjust" in top and "补偿：咖啡洒了" in top
    assert re.search(rf"可用积分\s+{before}\s+→\s+{before + 200}", top), top
    with live.db.transaction() as s:
        n = s.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "points.adjust", AuditLog.object_id == str(alice))
        )
    assert audit_rows.count() == n == 2  # the seed's anniversary gift, then this one
    shoot(page, "audit")

    # The other main pages, for the record.
    for name, path in [
        ("orders", "/admin/orders"),
        ("order", f"/admin/orders/{live.shop.orders['POS-SH1-001']}"),
        ("redemptions", "/admin/redemptions"),
        ("approvals", "/admin/approvals"),
        ("programme", "/admin/programme"),
        ("versions", "/admin/programme/versions"),
    ]:
        page.goto(live.url + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("main h1").count() == 1, name
        shoot(page, name)


def test_store_staff_cannot_see_another_stores_member(live: Live, page: Any) -> None:
    carol = live.shop.members["carol"]  # a member of Shenzhen-1
    alice = live.shop.members["alice"]  # a member of Shanghai-1
    sign_in(page, live, "sh1")
    # Chains: her exact phone finds Carol (a member is the brand's: the clerk can serve
    # her), but not by name, not in the list, and not her 360 view.
    page.goto(f"{live.url}/admin/members?phone=13800000003")
    found = page.locator("tr[data-member-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.memberId)"
    )
    assert [int(x) for x in found] == [carol]
    page.goto(f"{live.url}/admin/members?phone=13900000099")
    assert "您的权限范围内没有匹配的会员" in page.inner_text("[data-testid=member-results]")
    page.goto(f"{live.url}/admin/members?q=陈静")
    assert page.locator("tr[data-member-id]").count() == 0
    page.goto(f"{live.url}/admin/members")
    listed = {
        int(x)
        for x in page.locator("tr[data-member-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.memberId)"
        )
    }
    assert listed == {alice}
    # By URL: 404, and nothing of Carol on the page.
    resp = page.goto(f"{live.url}/admin/members/{carol}")
    assert resp is not None and resp.status == 404
    assert "陈静" not in page.content()
    assert "不在您的数据范围内" in page.content()
    shoot(page, "not-found")
    # Her orders and the dashboard of her store are out of reach too.
    resp = page.goto(f"{live.url}/admin/orders/{live.shop.orders['POS-SZ1-005']}")
    assert resp is not None and resp.status == 404
    resp = page.goto(f"{live.url}/admin/dashboard?unit=sz1")
    assert resp is not None and resp.status == 404
    # By the API key of that store: 404 as well (her exact phone finds her, as in the
    # console: chains); the store's own member is readable.
    with api(live, "sh1") as c:
        assert c.get(f"/v1/members/{carol}").status_code == 404
        by_phone = c.get("/v1/members", params={"phone": "13800000003"}).json()["items"]
        assert [m["id"] for m in by_phone] == [carol]
        assert c.get("/v1/members", params={"q": "陈静"}).json()["items"] == []
        assert c.get(f"/v1/members/{alice}").status_code == 200


def _dashboard_figures(page: Any) -> dict[str, int]:
    keys = ["sales", "member_sales", "orders", "member_orders", "points_issued"]
    out = {k: figure(page, f"[data-figure={k}]") for k in keys}
    out["members_total"] = figure(page, "[data-kpi=members_total]")
    out["liability_points"] = figure(page, "[data-figure=liability_points]")
    return out


def test_regional_manager_dashboard_totals_are_the_sum_of_the_regions_stores(
    live: Live, page: Any
) -> None:
    sign_in(page, live, "east")
    assert page.inner_text("[data-testid=unit-name]") == "华东区"
    chart(page, "chart-sales-daily")
    region = _dashboard_figures(page)
    # Only the region's stores (and the region itself) are offered.
    options = page.locator("#unit option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["east", "sh1", "sh2"]
    stores = []
    for code in ("sh1", "sh2"):
        page.select_option("#unit", code)
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"**unit={code}**")
        chart(page, "chart-sales-daily")
        stores.append(_dashboard_figures(page))
    assert region == {k: stores[0][k] + stores[1][k] for k in region}
    # ... and the region's sales are exactly its stores' orders from the API.
    east_orders = api_orders(live, "east")
    assert region["sales"] == sum(o["amount_paid_minor"] for o in east_orders) > 0
    assert region["orders"] == len(east_orders) == sum(1 for o in ORDERS if o[1] in ("sh1", "sh2"))
    # The south region stays out of reach.
    resp = page.goto(f"{live.url}/admin/dashboard?unit=south")
    assert resp is not None and resp.status == 404


def test_programme_edit_previewed_and_published_applies_to_the_next_order(
    live: Live, browser: Any
) -> None:
    page = new_page(browser)
    try:
        sign_in(page, live, "admin", "/admin/programme/edit")
        with live.db.transaction() as s:
            active = s.scalar(select(func.max(ProgrammeVersion.version)))
        assert active is not None

        # An invalid draft: the error shows next to the section, nothing is published.
        campaigns = yaml.safe_dump(
            [{"code": "launch-bonus", "name": "开业加赠 50 积分", "bonus_points": -5}],
            allow_unicode=True,
        )
        page.fill("#f-campaigns", campaigns)
        page.click("button[value=preview]")
        page.wait_for_selector("[data-error=campaigns]")
        assert "bonus_points" in page.inner_text("[data-error=campaigns]")
        assert page.get_attribute("#f-campaigns", "aria-invalid") == "true"

        # A valid draft: a flat 50-point bonus on every order, previewed on a ¥88 order.
        campaigns = yaml.safe_dump(
            [{"code": "launch-bonus", "name": "开业加赠 50 积分", "bonus_points": 50}],
            allow_unicode=True,
        )
        page.fill("#f-campaigns", campaigns)
        page.fill("#s-amount", "88")
        page.select_option("#s-store", "sh1")
        page.click("button[value=preview]")
        page.wait_for_selector("[data-testid=preview]")
        draft = int(page.get_attribute("[data-testid=preview-draft]", "data-points") or 0)
        assert draft == 88 + 50
        assert "开业加赠 50 积分" in page.inner_text("[data-testid=preview]")
        shoot(page, "programme-edit")

        # Publish: a new version, with who published it and the diff.
        page.fill("#note", "开业活动")
        page.click("[data-testid=publish]")
        page.wait_for_selector("[data-testid=published]")
        assert page.url.endswith(f"/admin/programme/versions/{active + 1}?notice=published")
        assert page.inner_text("[data-testid=published-by]") == "admin"
        diff = page.inner_text("[data-testid=diff]")
        assert "+" in diff and "launch-bonus" in diff
        shoot(page, "version")
        with live.db.transaction() as s:
            newest = s.scalar(select(ProgrammeVersion).order_by(ProgrammeVersion.version.desc()))
            assert newest is not None
            assert (newest.version, newest.created_by, newest.note) == (
                active + 1,
                "user:admin",
                "开业活动",
            )

        # The next order earns under the new version.
        with api(live, "sh1") as c:
            r = c.post(
                "/v1/orders",
                json={
                    "external_id": "POS-AFTER-PUBLISH",
                    "member_id": live.shop.members["alice"],
                    "store": "sh1",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "amount_paid_minor": 88_00,
                    "lines": [{"sku": "LATTE", "quantity": 1, "unit_price_minor": 88_00}],
                },
            )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["programme_version"] == active + 1
        assert body["points"]["earned"] == 88 + 50
        assert any(b["rule"] == "campaign_bonus:launch-bonus" for b in body["points"]["breakdown"])
        assert page.outside_requests == []
    finally:
        page.context.close()


def test_the_login_page_in_both_languages(live: Live, browser: Any) -> None:
    for locale, title, shot in [("zh-CN", "登录", "login"), ("en-US", "Sign in", None)]:
        page = new_page(browser, locale)
        try:
            page.goto(f"{live.url}/admin/login")
            assert page.inner_text("button[type=submit]") == title
            if shot:
                shoot(page, shot)
            page.fill("#login", "admin")
            page.fill("#password", "wrong-password")
            page.click("button[type=submit]")
            assert page.locator("[role=alert]").count() == 1
        finally:
            page.context.close()
