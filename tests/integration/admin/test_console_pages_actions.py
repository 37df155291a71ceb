"""The console's actions through its forms: adjust points (with approval above the limit),
tags, profile, redemption cancel, programme preview and publish — each written once,
audited, and refused without writing anything when it is not allowed or not valid."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.e2e.console.data import Shop, seed, sign_in

from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.kit.db import Database
from loyalist.models import (
    AdjustmentRequest,
    AuditLog,
    LedgerEntry,
    MemberTag,
    ProgrammeVersion,
    Redemption,
)
from loyalist.models import Member as MemberRow


@pytest.fixture
def shop(db: Database, clock: Any) -> Shop:
    return seed(db)


@pytest.fixture
def app(db: Database, shop: Shop) -> Any:
    return create_app(Settings(database_url=db.url), db=db)


@pytest.fixture
def console(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def count(db: Database, model: Any, *where: Any) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def audit_rows(db: Database, action: str) -> list[AuditLog]:
    with db.transaction() as s:
        rows = list(
            s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        )
        s.expunge_all()
        return rows


def test_adjust_points_with_a_reason_writes_one_entry_and_one_audit_row(
    console: TestClient, shop: Shop, db: Database
) -> None:
    alice = shop.members["alice"]
    token = sign_in(console, "admin")
    entries = count(db, LedgerEntry, LedgerEntry.member_id == alice)
    r = console.post(
        f"/admin/members/{alice}/adjust",
        data={"csrf_token": token, "points": "-120", "reason": "重复积分更正"},
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (
        303,
        f"/admin/members/{alice}?notice=adjusted",
    )
    assert count(db, LedgerEntry, LedgerEntry.member_id == alice) == entries + 1
    with db.transaction() as s:
        e = s.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.member_id == alice)
            .order_by(LedgerEntry.id.desc())
        ).first()
        assert e is not None
        assert (e.kind, e.delta_available, e.reason, e.actor) == (
            "adjust",
            -120,
            "重复积分更正",
            "user:admin",
        )
    [row] = [a for a in audit_rows(db, "points.adjust") if a.actor == "user:admin"]
    assert row.object_id == str(alice)
    assert row.before is not None and row.after is not None
    assert row.after["available"] == row.before["available"] - 120
    page = console.get(f"/admin/members/{alice}?notice=adjusted").text
    assert "积分已调整" in page and "admin 人工调整：−120 积分 — 重复积分更正" in page


@pytest.mark.parametrize(
    ("points", "reason", "field", "message"),
    [
        ("50", "  ", "adjust.reason", "必填"),
        ("0", "测试", "adjust.points", "不能为 0"),
        ("十", "测试", "adjust.points", "请输入整数"),
    ],
)
def test_an_invalid_adjustment_shows_the_error_next_to_the_field_and_writes_nothing(
    console: TestClient,
    shop: Shop,
    db: Database,
    points: str,
    reason: str,
    field: str,
    message: str,
) -> None:
    alice = shop.members["alice"]
    token = sign_in(console, "admin")
    entries = count(db, LedgerEntry)
    audits = count(db, AuditLog)
    r = console.post(
        f"/admin/members/{alice}/adjust",
        data={"csrf_token": token, "points": points, "reason": reason},
    )
    assert r.status_code == 422
    m = re.search(rf'<div class="field-error" data-error="{field}">([^<]*)</div>', r.text)
    assert m is not None and m.group(1) == message
    assert f'value="{points}"' in r.text  # what was typed is kept
    assert (count(db, LedgerEntry), count(db, AuditLog)) == (entries, audits)


def test_a_large_adjustment_waits_for_a_second_person(app: Any, shop: Shop, db: Database) -> None:
    alice = shop.members["alice"]
    with TestClient(app) as first, TestClient(app) as second:
        token = sign_in(first, "admin")
        entries = count(db, LedgerEntry, LedgerEntry.member_id == alice)
        r = first.post(
            f"/admin/members/{alice}/adjust",
            data={"csrf_token": token, "points": "8000", "reason": "大客户补偿"},
            follow_redirects=False,
        )
        assert r.headers["location"] == f"/admin/members/{alice}?notice=pending_approval"
        assert count(db, LedgerEntry, LedgerEntry.member_id == alice) == entries
        with db.transaction() as s:
            [req] = s.scalars(select(AdjustmentRequest)).all()
            req_id = req.id
            assert (req.points, req.status, req.requested_by) == (8000, "pending", "user:admin")
        member_page = first.get(f"/admin/members/{alice}?notice=pending_approval").text
        assert "需等待另一人审批" in member_page and "大客户补偿" in member_page

        # The requester cannot approve their own request: 403, nothing written.
        listing = first.get("/admin/approvals").text
        assert f'data-request-id="{req_id}"' in listing and "您的申请" in listing
        r = first.post(f"/admin/approvals/{req_id}/approve", data={"csrf_token": token})
        assert r.status_code == 403
        assert count(db, LedgerEntry, LedgerEntry.member_id == alice) == entries

        # A second HQ admin approves: the points land, the ledger says who approved.
        token2 = sign_in(second, "admin2")
        listing = second.get("/admin/approvals").text
        assert f"/admin/approvals/{req_id}/approve" in listing
        r = second.post(
            f"/admin/approvals/{req_id}/approve",
            data={"csrf_token": token2},
            follow_redirects=False,
        )
        assert r.headers["location"] == f"/admin/members/{alice}?notice=approved"
        assert count(db, LedgerEntry, LedgerEntry.member_id == alice) == entries + 1
        page = second.get(f"/admin/members/{alice}").text
        assert "（审批人：admin2）" in page
        [approved] = audit_rows(db, "points.adjust.approve")
        assert approved.actor == "user:admin2"
        # Deciding twice is a conflict, not a second credit.
        r = second.post(f"/admin/approvals/{req_id}/reject", data={"csrf_token": token2})
        assert r.status_code == 409
        assert count(db, LedgerEntry, LedgerEntry.member_id == alice) == entries + 1
        assert "没有待审批的申请" in second.get("/admin/approvals").text


def test_tags_and_profile_edits_are_audited(console: TestClient, shop: Shop, db: Database) -> None:
    bob = shop.members["bob"]
    token = sign_in(console, "east")
    r = console.post(
        f"/admin/members/{bob}/tags",
        data={"csrf_token": token, "add": "vip, 咖啡豆", "remove": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.transaction() as s:
        tags = set(s.scalars(select(MemberTag.tag).where(MemberTag.member_id == bob)))
    assert tags == {"vip", "咖啡豆"}
    r = console.post(
        f"/admin/members/{bob}/tags",
        data={"csrf_token": token, "add": "", "remove": "vip"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert [a.actor for a in audit_rows(db, "member.tags")] == ["user:east", "user:east"]

    r = console.post(
        f"/admin/members/{bob}/edit",
        data={"csrf_token": token, "name": "李明明", "city": "上海", "birthday": "1990-02-30"},
    )
    assert r.status_code == 422
    assert 'data-error="edit.birthday"' in r.text
    with db.transaction() as s:
        row = s.get(MemberRow, bob)
        assert row is not None and (row.name, row.city) == ("李明", None)
    r = console.post(
        f"/admin/members/{bob}/edit",
        data={"csrf_token": token, "name": "李明明", "city": "上海", "birthday": "1990-02-28"},
        follow_redirects=False,
    )
    assert r.headers["location"] == f"/admin/members/{bob}?notice=saved"
    [edit] = audit_rows(db, "member.update")
    assert edit.actor == "user:east"
    assert edit.before is not None and edit.after is not None
    # audit rows keep no clear personal data (issue 13): names and birthdays masked
    assert (edit.before.get("name"), edit.after.get("name")) == ("李*", "李*")
    assert (edit.before.get("birthday"), edit.after.get("birthday")) == (None, "****-02-28")
    assert (edit.before.get("city"), edit.after.get("city")) == (None, "上海")
    page = console.get(f"/admin/members/{bob}").text
    assert "李明明" in page and "咖啡豆" in page


@pytest.mark.parametrize(
    ("login", "visible"), [("agent", False), ("analyst", False), ("sh1", True)]
)
def test_phones_are_masked_for_roles_that_may_not_see_them(
    console: TestClient, shop: Shop, login: str, visible: bool
) -> None:
    sign_in(console, login)
    alice = shop.members["alice"]
    listing = console.get("/admin/members?phone=13800000001").text
    assert f'data-member-id="{alice}"' in listing
    results = listing.split('data-testid="member-results"')[1]  # not the search box
    member = console.get(f"/admin/members/{alice}").text
    for html in (results, member):
        # Shown in national format (138 0000 0001), masked as 138 **** 0001.
        assert ("138 0000 0001" in html) is visible
        assert ("138 **** 0001" in html) is not visible


def test_cancel_a_redemption_only_with_the_permission(app: Any, shop: Shop, db: Database) -> None:
    rid = shop.redemption_id
    with TestClient(app) as staff, TestClient(app) as agent:
        token = sign_in(staff, "sh1")  # store staff may not cancel redemptions
        assert f"/admin/redemptions/{rid}/cancel" not in staff.get("/admin/redemptions").text
        r = staff.post(
            f"/admin/redemptions/{rid}/cancel", data={"csrf_token": token, "reason": "x"}
        )
        assert r.status_code == 403
        with db.transaction() as s:
            red = s.get(Redemption, rid)
            assert red is not None and red.status == "completed"

        token = sign_in(agent, "agent")
        assert f"/admin/redemptions/{rid}/cancel" in agent.get("/admin/redemptions").text
        r = agent.post(
            f"/admin/redemptions/{rid}/cancel",
            data={"csrf_token": token, "reason": "顾客未取货"},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/admin/redemptions?notice=cancelled"
        with db.transaction() as s:
            red = s.get(Redemption, rid)
            assert red is not None
            assert (red.status, red.cancel_reason) == ("cancelled", "顾客未取货")
        page = agent.get("/admin/redemptions?notice=cancelled").text
        assert "兑换已取消" in page and "顾客未取货" in page
        timeline = agent.get(f"/admin/members/{shop.members['alice']}").text
        assert "兑换 美式咖啡一杯 已取消，退回 1,500 积分 — 顾客未取货" in timeline


def _form(console: TestClient, stock: str = "5000") -> dict[str, str]:
    """What the edit page posts as it stands: every section's YAML and every input."""
    html = console.get("/admin/programme/edit").text
    out = {}
    for name in ("tiers", "rules", "campaigns", "expiry", "rewards"):
        m = re.search(rf'name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
        assert m is not None, name
        out[name] = html_lib.unescape(m.group(1))
    inputs = r'<input type="(?:text|hidden)" name="((?:tiers|rewards|base_)[^"]+)" value="([^"]*)"'
    for name, value in re.findall(inputs, html):
        out[name] = html_lib.unescape(value)
    # money inputs are in yuan (the YAML keeps fen)
    assert out["tiers.levels.1.threshold"] == "1000.00" and out["rewards.0.stock"] == stock
    return out


def test_programme_preview_writes_nothing_and_publish_makes_a_version(
    app: Any, shop: Shop, db: Database
) -> None:
    versions = count(db, ProgrammeVersion)
    with TestClient(app) as admin, TestClient(app) as manager:
        token = sign_in(admin, "admin")
        form = _form(admin)
        form["rewards.0.stock"] = "4321"  # the input, not the YAML
        preview = admin.post(
            "/admin/programme/edit",
            data={**form, "csrf_token": token, "action": "preview", "sample_amount": "100"},
        )
        assert preview.status_code == 200
        assert 'data-testid="preview"' in preview.text
        assert count(db, ProgrammeVersion) == versions

        # Not valid: the message is next to its input (or its section's YAML), and nothing
        # is published.
        bad = {**form, "tiers.levels.1.threshold": "-1"}
        r = admin.post(
            "/admin/programme/edit", data={**bad, "csrf_token": token, "action": "publish"}
        )
        assert r.status_code == 422
        m = re.search(r'data-error="tiers.levels.1.threshold">([^<]*)<', r.text)
        assert m is not None and m.group(1) == "Input should be greater than or equal to 0"
        assert 'name="tiers.levels.1.threshold" value="-1"' in r.text
        bad = {**form, "tiers": form["tiers"].replace("threshold: 100000", "threshold: many")}
        bad.pop("tiers.levels.1.threshold")
        r = admin.post(
            "/admin/programme/edit", data={**bad, "csrf_token": token, "action": "publish"}
        )
        assert r.status_code == 422
        m = re.search(r'data-error="tiers">([^<]*)<', r.text)
        assert m is not None and "tiers.levels.1.threshold" in m.group(1)
        assert count(db, ProgrammeVersion) == versions

        # A regional manager may preview but not publish.
        mtoken = sign_in(manager, "east")
        r = manager.post(
            "/admin/programme/edit", data={**form, "csrf_token": mtoken, "action": "publish"}
        )
        assert r.status_code == 403
        assert count(db, ProgrammeVersion) == versions

        r = admin.post(
            "/admin/programme/edit",
            data={**form, "csrf_token": token, "action": "publish", "note": "美式库存"},
            follow_redirects=False,
        )
        assert r.headers["location"] == f"/admin/programme/versions/{versions + 1}?notice=published"
        assert count(db, ProgrammeVersion) == versions + 1
        page = admin.get(r.headers["location"]).text
        assert "+    stock: 4321" in page or "+  stock: 4321" in page
        [published] = audit_rows(db, "programme.publish")[-1:]
        assert published.actor == "user:admin"
        # A page opened on the older version cannot publish over the new one.
        r = admin.post(
            "/admin/programme/edit", data={**form, "csrf_token": token, "action": "publish"}
        )
        assert r.status_code == 409 and 'data-testid="stale"' in r.text
        assert count(db, ProgrammeVersion) == versions + 1
        # Publishing the active document again changes nothing.
        fresh = _form(admin, stock="4321")
        r = admin.post(
            "/admin/programme/edit",
            data={**fresh, "csrf_token": token, "action": "publish"},
            follow_redirects=False,
        )
        assert r.headers["location"].endswith("?notice=unchanged")
        assert count(db, ProgrammeVersion) == versions + 1


def test_the_approval_limit_comes_from_the_settings(db: Database, shop: Shop) -> None:
    alice = shop.members["alice"]
    app = create_app(Settings(database_url=db.url, adjust_approval_threshold=100), db=db)
    with TestClient(app) as c:
        token = sign_in(c, "agent")
        assert "超过 100 积分的调整需另一人审批" in c.get(f"/admin/members/{alice}").text
        r = c.post(
            f"/admin/members/{alice}/adjust",
            data={"csrf_token": token, "points": "100", "reason": "在限额内"},
            follow_redirects=False,
        )
        assert r.headers["location"].endswith("?notice=adjusted")
        r = c.post(
            f"/admin/members/{alice}/adjust",
            data={"csrf_token": token, "points": "-101", "reason": "超过限额"},
            follow_redirects=False,
        )
        assert r.headers["location"].endswith("?notice=pending_approval")
    assert count(db, AdjustmentRequest, AdjustmentRequest.points == -101) == 1
    assert count(db, LedgerEntry, LedgerEntry.reason == "超过限额") == 0


def test_an_expiry_reminder_shows_on_the_member_timeline(
    console: TestClient, shop: Shop, db: Database, clock: Any
) -> None:
    from datetime import UTC, datetime

    from loyalist.jobs import service as jobs

    # Points earned in 2026 expire at the end of 2027 (the demo's end_of_year policy);
    # the 30-day reminder goes out in December 2027.
    clock.freeze(datetime(2027, 12, 5, 2, 0, tzinfo=UTC))
    jobs.activate_pending(db)  # the last order's points are long out of their window
    jobs.remind_expiring(db)
    sign_in(console, "admin")
    page = console.get(f"/admin/members/{shop.members['alice']}").text
    # The event is recorded; no message was sent, so the page does not say one was.
    m = re.search(r"积分即将到期（事件已记录）：([\d,]+) 积分将于 2027年12月31日 后过期", page)
    assert m is not None
    assert "已发送" not in page and "提醒已发送" not in page
    assert 'data-kpi="expiring"' in page
    expiring = re.search(r'data-kpi="expiring" data-value="(\d+)"', page)
    assert expiring is not None and int(expiring.group(1)) == int(m.group(1).replace(",", ""))
