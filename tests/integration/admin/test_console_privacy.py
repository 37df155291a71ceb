"""Console (privacy2, issue 13 items 3 and 6): the member 360 page's "导出数据 / Export
data" (the zip) and "删除个人信息 / Erase personal data" (a confirmation step, only with
``privacy.manage``, audited), and the liability statement page (month picker, statement,
outstanding by expiry month, region and store, Excel download) that shows exactly the
ledger's figures. Every role × route is in tests/integration/admin/test_permission_matrix."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from tests.e2e.console.data import Shop, seed, sign_in
from tests.itest import counts

from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.liability import service as liability
from loyalist.models import AuditLog, Member, OutboxEvent


@pytest.fixture
def shop(db: Database, clock: Any) -> Shop:
    return seed(db)


@pytest.fixture
def console(db: Database, shop: Shop) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db.url), db=db)
    with TestClient(app, raise_server_exceptions=True, follow_redirects=False) as c:
        yield c


def audit_actions(db: Database, member_id: int) -> list[tuple[str, str]]:
    with db.transaction() as s:
        return [
            (a.action, a.actor)
            for a in s.scalars(
                select(AuditLog)
                .where(AuditLog.object_type == "member", AuditLog.object_id == str(member_id))
                .order_by(AuditLog.id)
            )
            if a.action.startswith("member.e")
        ]


def test_the_member_page_offers_export_and_erasure_to_privacy_managers_only(
    console: TestClient, shop: Shop
) -> None:
    alice = shop.members["alice"]
    for lang, export, erase in (
        ("zh_CN", "导出数据", "删除个人信息"),
        ("en", "Export data", "Erase personal data"),
    ):
        sign_in(console, "admin", lang)
        page = console.get(f"/admin/members/{alice}").text
        assert 'data-testid="privacy-actions"' in page
        assert f">{export}</a>" in page and f">{erase}</a>" in page
    for login in ("east", "sh1", "agent", "analyst"):
        with TestClient(console.app, follow_redirects=False) as c:
            sign_in(c, login)
            r = c.get(f"/admin/members/{alice}")
            assert r.status_code == 200, login
            assert 'data-testid="privacy-actions"' not in r.text and "/erase" not in r.text


def test_export_downloads_the_members_zip_and_is_audited(
    console: TestClient, shop: Shop, db: Database
) -> None:
    alice = shop.members["alice"]
    sign_in(console, "admin")
    r = console.get(f"/admin/members/{alice}/export")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    with db.transaction() as s:
        m = s.get(Member, alice)
        assert m is not None
        no = m.member_no
    assert r.headers["content-disposition"] == f'attachment; filename="{no}-export.zip"'
    z = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(z.read("manifest.json"))
    assert (manifest["member_id"], manifest["member_no"]) == (alice, no)
    assert json.loads(z.read("member.json"))[0]["phone"] == shop.phones["alice"]
    assert audit_actions(db, alice) == [("member.export", "user:admin")]


def test_erasure_asks_for_the_member_number_then_erases_and_audits(
    console: TestClient, shop: Shop, db: Database
) -> None:
    alice = shop.members["alice"]
    csrf = sign_in(console, "admin", "en")
    confirm = console.get(f"/admin/members/{alice}/erase")
    assert confirm.status_code == 200 and 'data-testid="erase-confirm"' in confirm.text
    with db.transaction() as s:
        m = s.get(Member, alice)
        assert m is not None
        no = m.member_no
    assert f"Type the member number {no} to confirm" in confirm.text
    # a wrong number: the form again with the field's error, and nothing written
    before = counts(db)
    wrong = console.post(
        f"/admin/members/{alice}/erase", data={"csrf_token": csrf, "member_no": "M1"}
    )
    assert wrong.status_code == 422
    assert (
        '<div class="field-error" data-error="erase.member_no">'
        "Type the member number exactly to confirm.</div>"
    ) in wrong.text
    assert counts(db) == before
    # without the CSRF token: refused, nothing written
    assert console.post(f"/admin/members/{alice}/erase", data={"member_no": no}).status_code == 403
    assert counts(db) == before
    done = console.post(
        f"/admin/members/{alice}/erase", data={"csrf_token": csrf, "member_no": no.lower()}
    )
    assert (done.status_code, done.headers["location"]) == (
        303,
        f"/admin/members/{alice}?notice=erased",
    )
    with db.transaction() as s:
        m = s.get(Member, alice)
        assert m is not None and m.erased_at is not None and (m.phone, m.name) == (None, None)
        [ev] = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "member.erased"))
        assert (ev.payload["member_id"], ev.payload["by"]) == (alice, "user:admin")
    assert audit_actions(db, alice) == [("member.erase", "user:admin")]
    page = console.get(f"/admin/members/{alice}?notice=erased").text
    assert "personal data is erased; their points and history stay" in page
    assert 'data-testid="erased"' in page and 'data-testid="erase-link"' not in page
    # a second confirmation changes nothing (idempotent) and still lands on the member
    before = counts(db)
    again = console.post(
        f"/admin/members/{alice}/erase", data={"csrf_token": csrf, "member_no": "x"}
    )
    assert again.status_code == 303 and counts(db) == before


def _values(html: str, attr: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(rf'data-{attr}="([^"]*)" data-value="(-?\d+)"', html)}


def test_the_liability_page_shows_the_ledgers_statement_and_outstanding_points(
    console: TestClient, shop: Shop, db: Database
) -> None:
    month = shop.now.strftime("%Y-%m")
    with db.transaction() as s:
        r = liability.report(s, SYSTEM, month)
    assert r.statement.reconciles and r.outstanding_points > 0
    sign_in(console, "admin", "zh_CN")
    page = console.get(f"/admin/liability?month={month}")
    assert page.status_code == 200
    html = page.text
    st = r.statement
    assert _values(html, "line") == {
        "opening": st.opening,
        "earned": st.earned,
        "redeemed": st.redeemed,
        "expired": st.expired,
        "adjusted": st.adjusted,
        "closing": st.closing,
    }
    assert "与积分账本一致" in html and f"{month} 月度报表" in html
    stores: dict[str, int] = {}
    regions: dict[str, int] = {}
    for row in r.outstanding:
        stores[row.store] = stores.get(row.store, 0) + row.points
        regions[row.region] = regions.get(row.region, 0) + row.points
    assert _values(html, "store") == stores
    assert _values(html, "region") == regions
    assert sum(stores.values()) == r.outstanding_points
    chart = re.search(r'id="chart-expiry" data-echarts="([^"]+)"', html)
    assert chart is not None
    option = json.loads(chart.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert sum(option["series"][0]["data"]) == r.outstanding_points
    # the month picker lists the months back from this one; the Excel is the same report
    assert f'<option value="{month}" selected>' in html
    x = console.get(f"/admin/liability.xlsx?month={month}")
    assert x.status_code == 200
    assert x.headers["content-disposition"] == f'attachment; filename="liability-{month}.xlsx"'
    wb = load_workbook(io.BytesIO(x.content))
    lines = {row[0]: row[1] for row in wb["statement 月度报表"].iter_rows(values_only=True)}
    assert (lines["opening 期初"], lines["closing 期末"]) == (st.opening, st.closing)
    en = console.get(f"/admin/liability?month={month}", headers={"accept-language": "en"})
    assert en.status_code == 200


def test_a_bad_month_is_refused_with_the_field_named(console: TestClient, shop: Shop) -> None:
    sign_in(console, "admin", "en")
    for bad in ("2026-13", "2026-6", "june", "2026-06-01"):
        r = console.get(f"/admin/liability?month={bad}")
        assert r.status_code == 422, bad
        assert "YYYY-MM" in r.text, bad
        assert console.get(f"/admin/liability.xlsx?month={bad}").status_code == 422, bad


def test_only_hq_staff_see_the_liability_in_the_navigation(console: TestClient, shop: Shop) -> None:
    for login, sees in (
        ("admin", True),
        ("analyst", True),
        ("east", False),
        ("sh1", False),
        ("agent", False),
    ):
        with TestClient(console.app, follow_redirects=False) as c:
            sign_in(c, login)
            page = c.get("/admin/password").text
            assert ('href="/admin/liability"' in page) == sees, login
            assert c.get("/admin/liability").status_code == (200 if sees else 403), login
