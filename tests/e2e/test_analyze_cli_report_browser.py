"""The HTML report in a real Chromium: it loads nothing but itself, every chart is drawn,
and nothing overflows the page at 1280 px."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loyalist.cli.main import app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "cdnow" / "CDNOW_sample.txt"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_renders_offline_with_every_chart(browser: Any, tmp_path: Path, lang: str) -> None:
    out = tmp_path / f"report-{lang}.html"
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            "report",
            "--input",
            str(SAMPLE),
            "--cdnow",
            "--keep-zero",
            "--out",
            str(out),
            "--lang",
            lang,
            "--currency",
            "$",
        ],
    )
    assert result.exit_code == 0, result.stderr
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    # the page is the only thing loaded
    assert requests == [out.as_uri()]
    sizes = page.eval_on_selector_all(
        "svg",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height] })",
    )
    assert len(sizes) == 6
    assert all(w >= 400 and h >= 150 for w, h in sizes), sizes
    shapes = page.eval_on_selector_all("svg rect, svg polyline", "els => els.length")
    assert shapes > 60
    # wide tables scroll inside their card; the page itself never scrolls sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.locator("h2").count() == 6
    page.screenshot(path=str(tmp_path / f"report-{lang}.png"), full_page=True)
    context.close()
