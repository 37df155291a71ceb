"""Every console page and every member page, signed in, in zh-CN, on demo data, says
nothing in English (issue 10, item 5): the visible text is searched for Latin words that
are not on a small, explicit allow-list (brand names, units, codes people type). Codes and
identifiers are marked ``translate="no"`` (or are ``<code>``) in the templates and are not
words. On the way, an operator computes the analytics section and exports the valuable
members at risk (issue 10, item 9). Screenshots at 1280 px and 375 px.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from tests.e2e.console.conftest import SCREENSHOTS
from tests.server import Server

from loyalist import bootstrap
from loyalist.demo import build
from loyalist.jobs import queue
from loyalist.kit.db import Database

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Latin words a Chinese page may show: brand and product names, units and acronyms people
# use in Chinese as they are. Anything else is an untranslated word from the code or the
# programme.
ALLOWED = {
    "Loyalist",  # the product
    "Club",  # the demo brand's name (悦享会 Loyalist Club)
    "API",
    "SKU",
    "POS",
    "ID",
    "CNY",
    "URL",
    "Webhook",
    "Webhooks",
    "OpenID",
    "App",
    "English",  # the console's language switch
    "EN",  # the member page's language switch
    "YAML",
    "SMS",
    "QR",
    "CSV",
    "Excel",
    "RFM",
    "BG",
    "NBD",
    "Gamma",
    "HTTP",
    "HTTPS",
    "VIP",  # a demo member tag
    "TD",  # 回复 TD 退订: the unsubscribe keyword Chinese SMS carry as it is
}
WORD = re.compile(r"(?<![\w.@/:-])[A-Za-z]{2,}(?![\w@/:-])")

# The visible text of the page, without codes: <code>/<pre>/<kbd>, anything inside an
# element marked translate="no", scripts and styles, and hidden elements; with the
# placeholders of inputs.
VISIBLE_TEXT = """() => {
  const SKIP = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "CODE", "PRE", "KBD", "SAMP",
                        "TEXTAREA", "OPTION"]);
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const t = n.nodeValue.trim();
    if (!t) continue;
    let skip = false;
    for (let e = n.parentElement; e; e = e.parentElement) {
      if (SKIP.has(e.tagName) || e.getAttribute("translate") === "no") { skip = true; break; }
    }
    if (skip || !n.parentElement.checkVisibility()) continue;
    out.push(t);
  }
  document.querySelectorAll("input[placeholder]:not([translate=no])").forEach(
    e => out.push(e.getAttribute("placeholder")));
  return out;
}"""


def english_words(page: Any) -> dict[str, str]:
    """Disallowed Latin words on the page → the text they appear in."""
    found: dict[str, str] = {}
    for text in page.evaluate(VISIBLE_TEXT):
        for w in WORD.findall(text):
            if w not in ALLOWED:
                found.setdefault(w, text[:100])
    return found


class DemoServer(Server):
    def env(self) -> dict[str, str]:
        return {**super().env(), "LOYALIST_DEV_INBOX": "true"}


@pytest.fixture
def demo(db: Database, tmp_path: Path) -> Iterator[tuple[Database, str, str]]:
    out = io.StringIO()
    build.run(db, members=60, months=6, seed=3, console=Console(file=out, width=200))
    phone = re.search(r"try member (1\d{10})", out.getvalue())
    assert phone is not None, out.getvalue()
    server = DemoServer(db.url, tmp_path / "server.log")
    server.start()
    try:
        yield db, server.url, phone.group(1)
    finally:
        server.stop()
    assert server.errors_logged() == "", server.errors_logged()


def _page(browser: Any, width: int) -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": 900 if width > 500 else 812},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        accept_downloads=True,
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def _check(page: Any, url: str, seen: dict[str, dict[str, str]]) -> None:
    page.goto(url)
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("html").get_attribute("lang") == "zh-CN", url
    words = english_words(page)
    if words:
        seen[url] = words


def test_every_page_in_chinese_and_the_analytics_walk(demo: Any, browser: Any) -> None:
    db, base, phone = demo
    bootstrap.configure()
    page = _page(browser, 1280)
    page.goto(f"{base}/admin/login?next=/admin/dashboard")
    page.fill("#login", "admin")
    page.fill("#password", "admin-demo-2026")
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/dashboard")

    # Analytics: compute in the background (the jobs run here, as a worker would), follow
    # the progress, then export the at-risk list.
    page.goto(f"{base}/admin/analytics")
    page.click("[data-testid=compute]")
    page.wait_for_selector('[data-testid=run-state][data-status="queued"]')
    assert queue.run_until_empty(db) >= 4
    page.wait_for_selector("[data-testid=segments]")  # the page reloads once it is done
    page.wait_for_selector("#chart-cohorts[data-ready='1']")
    rows = page.locator("[data-testid=at-risk] tbody tr[data-member-id]").count()
    assert rows > 0
    with page.expect_download() as dl:
        page.click("[data-testid=export-csv]")
    text = Path(dl.value.path()).read_bytes().decode("utf-8-sig")
    exported = list(csv.reader(io.StringIO(text)))
    assert exported[0][:4] == ["会员号", "姓名", "手机号", "分群"]
    assert len(exported) - 1 >= rows
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-analytics.png"), full_page=True)

    # Every console page the navigation offers, and the detail pages it links to.
    seen: dict[str, dict[str, str]] = {}
    links = page.eval_on_selector_all("nav a[href^='/admin']", "els => els.map(e => e.pathname)")
    assert "/admin/analytics" in links and len(links) >= 14
    details = []
    for path in ("/admin/members", "/admin/orders", "/admin/programme/versions", "/admin/journeys"):
        page.goto(base + path)
        href = page.locator(f"table.list tbody a[href^='{path}/']").first.get_attribute("href")
        assert href is not None, path
        details.append(href)
    extra = ["/admin/members/new", "/admin/programme/edit", "/admin/password", "/admin/audit"]
    # identity merge (issue 13 item 2): the merges, and a preview of two demo members
    page.goto(base + "/admin/members")
    two = page.eval_on_selector_all(
        "table.list tbody a[href^='/admin/members/']", "els => els.map(e => e.pathname)"
    )
    others = [h for h in dict.fromkeys(two) if h != details[0]]
    extra += ["/admin/merges", details[0] + "/merge"]
    extra.append(f"{details[0]}/merge?merged_id={others[0].rsplit('/', 1)[-1]}")
    for url in [*links, *details, *extra]:
        _check(page, base + url, seen)
    page.context.close()
    assert seen == {}, seen

    # The member page at 375 px: sign in with the code from the development inbox.
    phone_page = _page(browser, 375)
    phone_page.goto(f"{base}/m/signin")
    phone_page.fill("#phone", phone)
    phone_page.click("form[action='/m/signin'] button[type=submit]")
    inbox = phone_page.context.new_page()
    inbox.goto(f"{base}/m/dev/inbox")
    code = re.search(r"\b(\d{6})\b", inbox.locator("li .body").first.inner_text())
    inbox.close()
    assert code is not None
    phone_page.fill("#code", code.group(1))
    phone_page.click("form[action='/m/signin/code'] button[type=submit]")
    phone_page.wait_for_url(f"{base}/m")
    member_seen: dict[str, dict[str, str]] = {}
    # the member page's screens, those of coupons, referrals and check-ins included
    for url in (
        "/m",
        "/m/rewards",
        "/m/history",
        "/m/coupons",
        "/m/referral",
        "/m/habits",
        "/m/campaigns",
        "/m/household",  # households (issue 13)
    ):
        _check(phone_page, base + url, member_seen)
    phone_page.goto(base + "/m/rewards")
    reward = phone_page.locator("a[href^='/m/rewards/']").first.get_attribute("href")
    assert reward is not None
    _check(phone_page, base + reward, member_seen)
    phone_page.goto(f"{base}/m/campaigns")  # the member's assists and groups, if any
    shared = "a[href^='/m/assists/'], a[href^='/m/groups/']"
    for href in phone_page.eval_on_selector_all(shared, "els => els.map(e => e.pathname)"):
        _check(phone_page, base + href, member_seen)
    phone_page.goto(f"{base}/m")
    phone_page.screenshot(path=str(SCREENSHOTS / "member-page-zh-375.png"), full_page=True)
    phone_page.context.close()
    assert member_seen == {}, member_seen


def test_the_check_finds_an_english_word_and_skips_codes(browser: Any) -> None:
    """The check itself can fail: an English word in visible text or a placeholder is found;
    codes, translate="no" elements, hidden text and allowed words are not."""
    page = _page(browser, 1280)
    page.set_content(
        "<html lang='zh-CN'><body><p>积分 points 与 VIP、回复 TD 退订</p>"
        "<p><code>order.recorded</code> <span translate='no'>welcome</span></p>"
        "<p hidden>hidden words</p><input placeholder='搜索 search'>"
        "<input placeholder='order.recorded' translate='no'><p>free-tart a@b.cn</p></body></html>"
    )
    found = english_words(page)
    assert found == {"points": "积分 points 与 VIP、回复 TD 退订", "search": "搜索 search"}
    page.context.close()
