"""Every console page renders, for every role, in Chinese and in English; the navigation
follows the role; money and numbers are formatted per locale."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.e2e.console.data import Shop, seed, sign_in

from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.kit.db import Database


@pytest.fixture
def shop(db: Database, clock: Any) -> Shop:
    return seed(db)


@pytest.fixture
def console(db: Database, shop: Shop) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db.url), db=db)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def pages(shop: Shop) -> list[str]:
    alice = shop.members["alice"]
    return [
        "/admin/dashboard",
        "/admin/dashboard?unit=east&from=2026-05-01&to=2026-06-10",
        "/admin/members",
        "/admin/members?phone=13800000001",
        "/admin/members?q=王&tier=base&store=sh1",
        f"/admin/members/{alice}",
        "/admin/approvals",
        "/admin/orders",
        "/admin/orders?store=sh1",
        f"/admin/orders/{shop.orders['POS-SH1-001']}",
        "/admin/redemptions",
        "/admin/redemptions?status=completed",
        "/admin/programme",
        "/admin/programme/edit",
        "/admin/programme/versions",
        "/admin/programme/versions/2",
        "/admin/audit",
        "/admin/audit?object_type=member&action=points.adjust",
        "/admin/stream",
        "/admin/password",
        "/admin/jobs",
        "/admin/jobs?state=dead",
        "/admin/staff",
        "/admin/org",
        "/admin/keys",
        "/admin/members/new",
        "/admin/rewards",
        "/admin/messages",  # channels (issue 14)
        "/admin/messages?template=points_expiring&locale=en",
        "/admin/liability",  # privacy2
        "/admin/fraud",  # fraud controls (issue 13)
        "/admin/liability?month=2026-01",
        f"/admin/members/{alice}/erase",
        "/admin/duplicates",  # identity merge (issue 13 item 2)
        "/admin/duplicates?status=dismissed",
        "/admin/import",  # bulk import (issue 13 item 5)
        "/admin/backtest",  # backtest (issue 15 item 8)
        f"/admin/members/{alice}/merge",
        f"/admin/members/{alice}/merge?merged_id={shop.members['bob']}",
        "/admin/merges",
    ]


# A word of each page's heading, per language.
HEADINGS = {
    "zh_CN": [
        "数据概览",
        "会员",
        "审批",
        "订单",
        "积分兑换",
        "会员方案",
        "操作审计",
        "修改密码",
        "后台任务",
    ],
    "en": [
        "Dashboard",
        "Members",
        "Approvals",
        "Orders",
        "Redemptions",
        "Programme",
        "Audit trail",
        "Change password",
        "Jobs",
    ],
}


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_every_page_renders_for_an_hq_admin_in_both_languages(
    console: TestClient, shop: Shop, lang: str
) -> None:
    sign_in(console, "admin", lang)
    for url in pages(shop):
        r = console.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        html = r.text
        assert f'<html lang="{"zh-CN" if lang == "zh_CN" else "en"}">' in html, url
        # Every nav entry of an HQ admin is there, in the page's language.
        for word in HEADINGS[lang]:
            assert word in html, (url, word)
        assert "%(" not in html, (url, "an untranslated placeholder leaked")


def test_chinese_pages_use_chinese_words_and_yuan(console: TestClient, shop: Shop) -> None:
    sign_in(console, "admin", "zh_CN")
    member = console.get(f"/admin/members/{shop.members['alice']}").text
    assert "可用积分" in member and "积分流水" in member and "时间线" in member
    assert "Available points" not in member
    # The order of ¥128.00 earned points; the timeline says so in words.
    assert "在订单 POS-SH1-000 消费 ¥128.00" in member
    dash = console.get("/admin/dashboard").text
    # Bob's ¥12,500 gift box lifts the 30-day sales above ¥10,000: shown in 万.
    assert "万" in dash
    en = TestClient(console.app)
    sign_in(en, "admin", "en")
    assert "Available points" in en.get(f"/admin/members/{shop.members['alice']}").text


READS = {
    "members",
    "orders",
    "redemptions",
    "programme",
    "rewards",
    "coupons",  # issue 12
    "messages",  # issue 14
    "habits",  # issue 12
    "referrals",  # issue 12
    "journeys",  # issue 14
    "households",  # issue 13
    "duplicates",  # identity merge (issue 13 item 2)
}
NAV = {
    "hq_admin": READS
    | {
        "dashboard",
        "approvals",
        "audit",
        "jobs",
        "stream",
        "webhooks",
        "staff",
        "org",
        "keys",
        "analytics",
    },
    "regional_manager": READS | {"dashboard", "approvals", "analytics"},
    "store_staff": READS | {"dashboard"},
    "service_agent": READS,
    "analyst": READS | {"dashboard", "analytics"},
}
# the liability (privacy2): HQ staff with dashboard.read (the analyst's unit is HQ)
NAV["hq_admin"] = NAV["hq_admin"] | {"liability"}
NAV["analyst"] = NAV["analyst"] | {"liability"}
# fraud controls (issue 13): the review queue, for roles that approve (points.approve)
NAV["hq_admin"] = NAV["hq_admin"] | {"fraud"}
NAV["regional_manager"] = NAV["regional_manager"] | {"fraud"}
# bulk import (issue 13 item 5): jobs.manage
NAV["hq_admin"] = NAV["hq_admin"] | {"import"}
# backtest (issue 15 item 8): analytics and dashboard at HQ
NAV["hq_admin"] = NAV["hq_admin"] | {"backtest"}
NAV["analyst"] = NAV["analyst"] | {"backtest"}
LOGIN_OF_ROLE = {
    "hq_admin": "admin",
    "regional_manager": "east",
    "store_staff": "sh1",
    "service_agent": "agent",
    "analyst": "analyst",
}
NAV_LINK = re.compile(r'<a href="/admin/([a-z]+)" class="[^"]*"><span class="ico">')


@pytest.mark.parametrize("role", sorted(NAV))
def test_the_navigation_shows_what_the_role_may_open(
    console: TestClient, shop: Shop, role: str
) -> None:
    sign_in(console, LOGIN_OF_ROLE[role])
    html = console.get("/admin/members").text
    assert set(NAV_LINK.findall(html)) == NAV[role]
    for section in NAV[role]:
        r = console.get(f"/admin/{section}")
        assert r.status_code == 200, (role, section)
    for section in NAV["hq_admin"] - NAV[role]:
        r = console.get(f"/admin/{section}")
        assert r.status_code == 403, (role, section)
        assert "无权操作" in r.text


def test_home_sends_each_role_to_its_first_page(console: TestClient, shop: Shop) -> None:
    sign_in(console, "agent")
    r = console.get("/admin", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/admin/members")
    sign_in(console, "analyst")
    r = console.get("/admin", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/admin/dashboard")


def test_signed_out_pages_redirect_to_the_login_page(console: TestClient, shop: Shop) -> None:
    r = console.get("/admin/members?phone=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/login?next=/admin/members?phone=1"
    login = console.get("/admin/login?lang=en").text
    assert "Sign in" in login and 'lang="en"' in login


def test_language_switch_is_remembered_for_the_user(console: TestClient, shop: Shop) -> None:
    token = sign_in(console, "admin", "zh_CN")
    r = console.post(
        "/admin/lang",
        data={"csrf_token": token, "lang": "en", "next": "/admin/orders"},
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (303, "/admin/orders")
    assert "<h1>Orders</h1>" in console.get("/admin/orders").text
    # A new browser (no language cookie) gets the user's saved choice.
    other = TestClient(console.app)
    sign_in(other, "admin", "zh_CN")
    other.cookies.delete("loyalist_lang")
    assert "<h1>Orders</h1>" in other.get("/admin/orders").text


def test_static_assets_are_served_by_the_console(console: TestClient) -> None:
    for name, marker in [
        ("echarts.min.js", "echarts"),
        ("htmx.min.js", "htmx"),
        ("admin.css", "--brand"),
        ("admin.js", "data-echarts"),
    ]:
        r = console.get(f"/admin/static/{name}")
        assert r.status_code == 200 and marker in r.text, name
    assert console.get("/admin/static/../app.py").status_code == 404


def test_pages_reference_no_external_asset(console: TestClient, shop: Shop) -> None:
    sign_in(console, "admin")
    for url in pages(shop):
        html = console.get(url).text
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not ref.startswith(("http:", "https:", "//")), (url, ref)


def test_every_console_message_has_a_chinese_translation_with_the_same_placeholders() -> None:
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    import loyalist.admin

    admin = Path(loyalist.admin.__file__).parent
    found = {
        (m if isinstance(m, str) else m[0])
        for _f, _l, m, _c, _ctx in extract_from_dir(
            admin,
            [("templates/**.html", "jinja2"), ("*.py", "python")],
            options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
            keywords={"_": None},
        )
    }
    assert len(found) > 300
    po = admin / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as fh:
        zh = {m.id: m.string for m in read_po(fh, locale="zh_CN") if m.id}
    missing = sorted(m for m in found if not zh.get(m))
    assert missing == []
    placeholder = re.compile(r"%\([a-z_]+\)s")
    for msgid, msgstr in zh.items():
        assert sorted(placeholder.findall(msgid)) == sorted(placeholder.findall(msgstr)), msgid
    assert (admin / "locale" / "en" / "LC_MESSAGES" / "messages.po").exists()


def test_dashboard_dates_that_are_not_valid_are_shown_next_to_their_field(
    console: TestClient, shop: Shop
) -> None:
    sign_in(console, "admin")
    r = console.get("/admin/dashboard?from=2026-13-01&to=2026-06-10")
    assert r.status_code == 422
    assert '<div class="field-error" data-error="from">格式为 YYYY-MM-DD</div>' in r.text
    assert 'value="2026-13-01"' in r.text  # what was typed stays in the field
    r = console.get("/admin/dashboard?from=2026-06-10&to=2026-05-01")
    assert r.status_code == 422
    assert '<div class="field-error" data-error="to">必须晚于开始日期</div>' in r.text


def test_member_search_pages_by_fifty(console: TestClient, shop: Shop, db: Database) -> None:
    from loyalist.kit.actor import SYSTEM
    from loyalist.member import service as members
    from loyalist.member.schemas import MemberCreate

    with db.transaction() as s:
        for i in range(60):
            members.create(s, SYSTEM, MemberCreate(phone=f"1390000{i:04d}", home_store="sh2"))
    sign_in(console, "east")  # sh1 and sh2: 2 + 60 members
    first = console.get("/admin/members?store=sh2").text
    ids = re.findall(r'data-member-id="(\d+)"', first)
    assert len(ids) == 50
    nxt = re.search(r'href="([^"]+)" data-testid="next-page"', first)
    assert nxt is not None
    second = console.get(nxt.group(1).replace("&amp;", "&")).text
    more = re.findall(r'data-member-id="(\d+)"', second)
    assert len(more) == 61 - 50  # Bob and the 60 new members of sh2
    assert not set(ids) & set(more)
    assert 'data-testid="next-page"' not in second


def test_points_per_rule_are_explained_in_the_pages_language(
    console: TestClient, shop: Shop
) -> None:
    from loyalist.admin.explain import describe

    sign_in(console, "admin", "zh_CN")
    order = console.get(f"/admin/orders/{shop.orders['POS-SH1-000']}").text
    # ¥128 of coffee beans: 1 point per ¥1, doubled by the beans rule.
    assert "每实付 ¥1.00 得 1 积分" in order
    # Category codes by the programme's labels, never the raw code.
    assert "2 倍：品类 咖啡豆" in order and "咖啡豆双倍积分" in order
    assert "coffee_beans" not in order.split('data-testid="breakdown"')[-1]
    assert describe("Capped at 20000 points per order", "zh_CN") == "每单最多 20000 积分"
    assert describe("1.5× on every line via channels app, miniprogram", "zh_CN") == (
        "1.5 倍：全部商品，渠道 app, miniprogram"
    )
    assert describe("2× on every line", "en") == "2× on every line"
    assert describe("something new", "zh_CN") == "something new"
