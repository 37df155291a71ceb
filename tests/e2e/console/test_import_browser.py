"""The import page (导入, issue 13 item 5) in Chromium, in Chinese: a file with bad rows
shows the row-by-row report and imports nothing; a good file is confirmed, its import job
runs (as a worker would) and the page follows the progress until the result. No English
word on either page. Screenshots: console-import-report.png, console-import.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.e2e.console.conftest import Live, shoot, sign_in
from tests.e2e.console.test_console_chinese import english_words

from loyalist import bootstrap
from loyalist.config import get_settings
from loyalist.jobs import queue
from loyalist.models import ImportBatch, Member

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GOOD = (
    "external_id,phone,name,home_store,tags\n"
    "E-1,13912340001,导入一,sh1,vip\n"
    "E-2,13912340002,导入二,sz1,\n"
    "E-3,,导入三,,\n"
)
BAD = "external_id,phone,name,home_store\nE-1,13912340001,导入一,sh1\nE-1,12,导入二,nowhere\n"


@pytest.fixture(autouse=True)
def import_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Set before the server starts (it reads the environment): one directory for the
    server that keeps the upload and this process that runs the import job."""
    where = tmp_path / "imports"
    monkeypatch.setenv("LOYALIST_IMPORT_DIR", str(where))
    get_settings.cache_clear()
    yield where
    get_settings.cache_clear()


def choose(page: Any, name: str, content: str) -> None:
    page.select_option("#i-kind", "members")
    page.set_input_files(
        "#i-file", files=[{"name": name, "mimeType": "text/csv", "buffer": content.encode()}]
    )
    page.click("[data-testid=import-check]")


def members(live: Live) -> int:
    with live.db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Member)) or 0)


def test_report_then_import_with_progress_in_chinese(live: Live, page: Any) -> None:
    bootstrap.configure()
    sign_in(page, live, "admin", "/admin/import")
    page.goto(f"{live.url}/admin/import")
    before = members(live)

    choose(page, "会员.csv", BAD)
    page.wait_for_selector("[data-testid=import-report]")
    cells = page.eval_on_selector_all(
        "[data-testid=import-report] tbody tr",
        "rows => rows.map(r => [r.dataset.row, r.dataset.field, r.dataset.code])",
    )
    assert cells == [
        ["3", "external_id", "duplicate_in_file"],
        ["3", "home_store", "unknown_store"],
        ["3", "phone", "invalid"],
    ]
    assert english_words(page) == {}
    shoot(page, "import-report")
    assert members(live) == before

    choose(page, "会员.csv", GOOD)
    page.wait_for_selector("[data-testid=import-ready]")
    page.click("[data-testid=import-confirm]")
    page.wait_for_selector('[data-testid=import-state][data-status="running"]')
    assert queue.run_until_empty(live.db) == 1
    # the page polls every 2 s and shows the result once the job is done
    page.wait_for_selector('[data-testid=import-state][data-status="done"]')
    page.wait_for_selector('[data-testid=imports] tr[data-status="done"]')  # then reloads
    result = page.locator("[data-testid=import-result]")
    assert (result.get_attribute("data-created"), result.get_attribute("data-unchanged")) == (
        "3",
        "0",
    )
    assert page.get_attribute("[data-testid=import-state] progress", "value") == "3"
    assert english_words(page) == {}
    shoot(page, "import")
    assert members(live) == before + 3
    with live.db.transaction() as s:
        b = s.scalars(select(ImportBatch)).one()
        assert (b.status, b.filename, b.created) == ("done", "会员.csv", 3)


def test_orders_import_under_a_chosen_programme_version_in_chinese(live: Live, page: Any) -> None:
    """The select of published versions: orders confirmed under version 1 while version 2
    is active earn under version 1, and the import's page says so, in Chinese."""
    from datetime import UTC, datetime, timedelta

    from loyalist.bulkimport import runner
    from loyalist.kit.actor import Actor
    from loyalist.models import Order
    from loyalist.programme import service as programmes

    bootstrap.configure()
    with live.db.transaction() as s:
        _v, p = programmes.active(s)
        base = p.earning.base.model_copy(update={"points_per_unit": 3})
        doc = p.model_copy(update={"earning": p.earning.model_copy(update={"base": base})})
        assert programmes.apply(s, doc, actor="test")[1]
        newest = programmes.latest_version(s)
        assert newest is not None
        active = newest.version
    actor = Actor(name="test:import", scope_path="/", principal="test:import")
    assert runner.run(live.db, actor, "members", GOOD.encode(), "m.csv").status == "done"
    at = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
    orders = (
        "external_id,member,store,occurred_at,amount_paid_minor\n"
        f"V-1,E-1,sh1,{at},10000\nV-2,E-2,sz1,{at},5000\n"
    )
    sign_in(page, live, "admin", "/admin/import")
    page.goto(f"{live.url}/admin/import")
    options = page.eval_on_selector_all("#i-version option", "os => os.map(o => o.value)")
    assert options == ["", *[str(n) for n in range(active, 0, -1)]]
    page.select_option("#i-kind", "orders")
    page.select_option("#i-version", "1")
    page.set_input_files(
        "#i-file", files=[{"name": "订单.csv", "mimeType": "text/csv", "buffer": orders.encode()}]
    )
    page.click("[data-testid=import-check]")
    page.wait_for_selector('[data-testid=import-ready-version][data-version="1"]')
    assert "方案版本 1" in page.inner_text("[data-testid=import-ready-version]")
    page.click("[data-testid=import-confirm]")
    page.wait_for_selector('[data-testid=import-batch-version][data-version="1"]')
    assert queue.run_until_empty(live.db) == 1
    page.wait_for_selector('[data-testid=imports] tr[data-status="done"]')
    assert english_words(page) == {}
    with live.db.transaction() as s:
        q = select(Order.external_id, Order.programme_version).where(
            Order.external_id.in_(["V-1", "V-2"])
        )
        assert sorted((str(e), v) for e, v in s.execute(q)) == [("V-1", 1), ("V-2", 1)]
        b = s.scalars(select(ImportBatch).where(ImportBatch.kind == "orders")).one()
        assert (b.status, b.programme_version, b.created) == ("done", 1, 2)
