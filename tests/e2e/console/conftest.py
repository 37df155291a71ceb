"""A real console server on the shop of ``data.py``, and Chromium at 1280 px.

The server runs in a subprocess on the real clock; the shop's history is written relative
to the real "now" (the seed freezes this process's clock at each simulated instant).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.console.data import PASSWORD, Shop, seed
from tests.server import Server

from loyalist.kit.db import Database

ROOT = Path(__file__).parents[3]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Live:
    url: str
    shop: Shop
    db: Database
    server: Server


@pytest.fixture
def live(db: Database, tmp_path: Path) -> Iterator[Live]:
    shop = seed(db, datetime.now(UTC))
    server = Server(db.url, tmp_path / "server.log")
    server.start()
    try:
        yield Live(server.url, shop, db, server)
    finally:
        server.stop()
    assert server.errors_logged() == "", server.errors_logged()


def new_page(browser: Any, locale: str = "zh-CN") -> Any:
    """A 1280×900 desktop page whose browser asks for ``locale``; external requests fail
    the test (the console must load nothing from outside the server)."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale=locale, timezone_id="Asia/Shanghai"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    outside: list[str] = []

    def watch(req: Any) -> None:
        if not req.url.startswith(("http://127.0.0.1", "data:")):
            outside.append(req.url)

    page.on("request", watch)
    page.outside_requests = outside
    return page


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    p = new_page(browser)
    try:
        yield p
        assert p.outside_requests == [], p.outside_requests
    finally:
        p.context.close()


def sign_in(page: Any, live: Live, login: str, next_path: str = "/admin") -> None:
    page.goto(f"{live.url}/admin/login?next={next_path}")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/admin/login" not in page.url, page.content()[:2000]


def shoot(page: Any, name: str) -> None:
    """Save docs/screenshots/console-<name>.png (the whole page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=True)


def figure(page: Any, selector: str) -> int:
    """The raw integer behind a figure shown on the page (its data-value)."""
    value = page.get_attribute(selector, "data-value")
    assert value is not None and re.fullmatch(r"-?\d+", value), (selector, value)
    return int(value)
