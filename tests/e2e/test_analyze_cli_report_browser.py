"""The HTML report in a real Chromium: it loads nothing but itself, every chart is drawn,
and nothing overflows the page at 1280 px.

Chromium is driven from a child process: other e2e modules keep a session-wide Playwright
running, and a second synchronous Playwright cannot start inside the same process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loyalist.cli.main import app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "cdnow" / "CDNOW_sample.txt"

PROBE = """
import json, sys
from playwright.sync_api import sync_playwright

url, shot = sys.argv[1], sys.argv[2]
args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    page.wait_for_load_state("load")
    sizes = page.eval_on_selector_all(
        "svg", "els => els.map(e => [e.clientWidth || e.getBoundingClientRect().width,"
        " e.getBoundingClientRect().height])"
    )
    shapes = page.eval_on_selector_all("svg rect, svg polyline", "els => els.length")
    overflow = page.eval_on_selector_all(
        "section", "els => els.filter(s => s.scrollWidth > s.clientWidth).length"
    )
    out = {
        "requests": requests,
        "sizes": sizes,
        "shapes": shapes,
        "page_width": page.evaluate("document.documentElement.scrollWidth"),
        "sections_overflowing": overflow,
        "h2": page.locator("h2").count(),
    }
    page.screenshot(path=shot, full_page=True)
    browser.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_renders_offline_with_every_chart(tmp_path: Path, lang: str) -> None:
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
    shot = tmp_path / f"report-{lang}.png"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, out.as_uri(), str(shot)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    # the page is the only thing loaded
    assert seen["requests"] == [out.as_uri()]
    # six charts, each drawn at a readable size with its shapes
    assert len(seen["sizes"]) == 6
    assert all(w >= 400 and h >= 150 for w, h in seen["sizes"]), seen["sizes"]
    assert seen["shapes"] > 60
    # wide tables scroll inside their own box: no section and not the page overflows
    assert seen["sections_overflowing"] == 0
    assert seen["page_width"] <= 1280
    assert seen["h2"] == 6
    assert shot.stat().st_size > 50_000
