"""The console's programme preview explains ``when:`` conditions clause by clause."""

from __future__ import annotations

import re
from typing import Any

import yaml
from fastapi.testclient import TestClient
from tests.e2e.console.data import sign_in
from tests.integration.admin.test_console_pages_actions import _form, app, shop  # noqa: F401

WHEN = {
    "all": [
        {"eq": {"time.weekday": "wed"}},
        {"gte": {"member.tier": "gold"}},
        {"gte": {"order.amount_minor": 10000}},
    ]
}


def _preview(client: TestClient, token: str, form: dict[str, str], tier: str) -> str:
    r = client.post(
        "/admin/programme/edit",
        data={
            **form,
            "csrf_token": token,
            "action": "preview",
            "sample_amount": "120",
            "sample_at": "2026-06-10T11:00",  # a Wednesday
            "sample_tier": tier,
        },
    )
    assert r.status_code == 200, r.text
    return r.text


def _clauses(page: str) -> list[tuple[str, str]]:
    draft = page[page.index('data-testid="preview-draft"') :]
    return [
        (passed, re.sub(r"\s+", " ", text).strip())
        for passed, text in re.findall(
            r'data-testid="clause" data-passed="(\w+)"[^>]*>(.*?)</li>', draft, re.S
        )
    ]


def test_preview_explains_each_clause_in_both_languages(app: Any) -> None:  # noqa: F811
    with TestClient(app) as admin:
        token = sign_in(admin, "admin", "zh_CN")
        form = _form(admin)
        assert yaml.safe_load(form["campaigns"]) in ([], None)  # the seed has no campaigns
        campaigns = [{"code": "member-day", "name": "会员日", "multiplier": "2", "when": WHEN}]
        form["campaigns"] = yaml.safe_dump(campaigns, allow_unicode=True)
        page = _preview(admin, token, form, "silver")
        assert _clauses(page) == [
            ("false", "✗ 以下条件全部满足"),
            ("true", "✓ 星期等于 周三（实际：周三）"),
            ("false", "✗ 会员等级不低于 金卡会员（实际：银卡会员）"),
            ("true", "✓ 订单实付（分）不低于 10000（实际：12000）"),
        ]
        assert "条件: " in page or "条件:" in page
        page = _preview(admin, token, form, "gold")
        assert [p for p, _t in _clauses(page)] == ["true"] * 4

    with TestClient(app) as admin:
        token = sign_in(admin, "admin", "en")
        page = _preview(admin, token, form, "silver")
        assert _clauses(page) == [
            ("false", "✗ all of these hold"),
            ("true", "✓ weekday is wed (actual: wed)"),
            ("false", "✗ member tier is at least Gold (actual: Silver)"),
            ("true", "✓ amount paid (fen) is at least 10000 (actual: 12000)"),
        ]


def test_an_invalid_condition_is_shown_next_to_its_section(app: Any) -> None:  # noqa: F811
    with TestClient(app) as admin:
        token = sign_in(admin, "admin", "en")
        form = _form(admin)
        when = {"all": [{"gte": {"member.tier": "diamond"}}]}
        campaigns = [{"code": "member-day", "multiplier": "2", "when": when}]
        form["campaigns"] = yaml.safe_dump(campaigns, allow_unicode=True)
        r = admin.post(
            "/admin/programme/edit", data={**form, "csrf_token": token, "action": "preview"}
        )
        assert r.status_code == 422
        m = re.search(r'data-error="campaigns">([^<]*)<', r.text)
        assert m is not None
        assert m.group(1) == (
            "earning.campaigns.0.when.all.0.gte: &#39;diamond&#39; is not one of: "
            "base, silver, gold, platinum, black"
        )
