"""Console import (导入, issue 13 item 5): the programme version imported orders earn under —
a select of the published versions (default: the version in force at each order's date),
the choice checked at the upload, carried by the confirmation, stored with the import and
shown on its page; an unknown version, or a version for members, is refused with the field
named and nothing written."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.console import console_client, login, make_users
from tests.itest import counts

from loyalist.bulkimport import runner
from loyalist.config import get_settings
from loyalist.jobs import queue
from loyalist.kit.actor import Actor
from loyalist.models import AuditLog, ImportBatch, Order
from loyalist.programme import service as programmes

ACTOR = Actor(name="test:import", scope_path="/", principal="test:import")
MEMBERS = "external_id,phone,home_store\nC001,13800138001,sh1\nC002,13800138002,sz1\n"
ORDERS = (
    "external_id,member,store,occurred_at,amount_paid_minor,channel,category\n"
    "O-1,C001,sh1,2026-06-01T10:00:00+08:00,12345,pos,coffee\n"
    "O-2,C001,sh2,2026-06-02T10:00:00+08:00,5000,app,coffee\n"
    "O-3,C002,sz1,2026-06-09T12:00:00+08:00,20000,pos,coffee_beans\n"
)


@pytest.fixture(autouse=True)
def import_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    where = tmp_path / "imports"
    monkeypatch.setenv("LOYALIST_IMPORT_DIR", str(where))
    get_settings.cache_clear()
    yield where
    get_settings.cache_clear()


@pytest.fixture
def console(world: Any, clock: Any) -> Iterator[TestClient]:
    """Version 2 (3 points per yuan) published an hour after the demo's version 1; the
    members imported."""
    clock.advance(timedelta(hours=1))
    with world.db.transaction() as s:
        _v, p = programmes.active(s)
        base = p.earning.base.model_copy(update={"points_per_unit": 3})
        programmes.apply(
            s,
            p.model_copy(update={"earning": p.earning.model_copy(update={"base": base})}),
            actor="test",
        )
    assert runner.run(world.db, ACTOR, "members", MEMBERS.encode(), "m.csv").status == "done"
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def upload(c: TestClient, csrf: str, kind: str, content: str, version: str) -> Any:
    return c.post(
        "/admin/import",
        data={"csrf_token": csrf, "kind": kind, "programme_version": version},
        files={"file": (f"{kind}.csv", io.BytesIO(content.encode()), "text/csv")},
        headers={"accept-language": "zh-CN"},
        follow_redirects=False,
    )


def hidden(html: str) -> dict[str, str]:
    form = html.split('action="/admin/import/start"', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))


def points(db: Any) -> dict[str, tuple[int, int | None]]:
    with db.transaction() as s:
        q = select(Order.external_id, Order.points_earned, Order.programme_version)
        return {str(e): (int(p), v) for e, p, v in s.execute(q)}


def test_the_page_offers_the_published_versions_with_the_date_rule_first(
    world: Any, console: TestClient
) -> None:
    login(console, world.db, "admin")
    html = console.get("/admin/import", headers={"accept-language": "zh-CN"}).text
    select_ = html.split('name="programme_version"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="(\d*)"', select_) == ["", "2", "1"]
    assert "每笔订单发生时生效的方案版本" in select_
    assert "订单积分计算依据" in html


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1", {"O-1": (123, 1), "O-2": (75, 1), "O-3": (400, 1)}),
        ("2", {"O-1": (370, 2), "O-2": (225, 2), "O-3": (1200, 2)}),
        ("", {"O-1": (370, 2), "O-2": (225, 2), "O-3": (1200, 2)}),  # in force: the active
    ],
)
def test_confirmed_orders_earn_under_the_chosen_version_which_the_import_shows(
    world: Any, console: TestClient, version: str, expected: dict[str, tuple[int, int]]
) -> None:
    db = world.db
    csrf = login(console, db, "admin")
    r = upload(console, csrf, "orders", ORDERS, version)
    assert r.status_code == 200, r.text[:2000]
    assert hidden(r.text)["programme_version"] == version
    shown = f"方案版本 {version}" if version else "每笔订单发生时生效的方案版本"
    assert f'data-testid="import-ready-version" data-version="{version}">积分计算依据: {shown}' in (
        r.text
    )
    started = console.post(
        "/admin/import/start", data={**hidden(r.text), "csrf_token": csrf}, follow_redirects=False
    )
    assert started.status_code == 303
    batch_id = int(re.findall(r"batch=(\d+)", started.headers["location"])[0])
    queue.run_until_empty(db)
    assert points(db) == expected
    with db.transaction() as s:
        b = s.get(ImportBatch, batch_id)
        assert b is not None and (b.status, b.programme_version) == (
            "done",
            int(version) if version else None,
        )
        queued = s.scalar(select(AuditLog).where(AuditLog.action == "import.queue"))
        assert queued is not None
        assert (queued.after or {}).get("programme_version") == (int(version) if version else None)
    page = console.get(f"/admin/import?batch={batch_id}", headers={"accept-language": "zh-CN"})
    assert f'data-testid="import-batch-version" data-version="{version}">积分计算依据: {shown}' in (
        page.text
    )


@pytest.mark.parametrize(
    ("kind", "content", "version", "message"),
    [
        ("orders", ORDERS, "9", "没有这个已发布的方案版本。"),
        ("orders", ORDERS, "v1", "没有这个已发布的方案版本。"),
        (
            "members",
            MEMBERS.replace("C00", "D00").replace("1380013", "1390013"),
            "1",
            "只有订单可以按方案版本计算积分。",
        ),
    ],
)
def test_an_unknown_version_or_one_for_members_is_refused_at_the_upload(
    world: Any,
    console: TestClient,
    import_dir: Path,
    kind: str,
    content: str,
    version: str,
    message: str,
) -> None:
    db = world.db
    csrf = login(console, db, "admin")
    before = counts(db)
    r = upload(console, csrf, kind, content, version)
    assert r.status_code == 422
    assert f'data-error="programme_version">{message}</div>' in r.text
    assert 'action="/admin/import/start"' not in r.text
    assert counts(db) == before
    assert not import_dir.exists() or list(import_dir.iterdir()) == []


def test_a_confirmation_with_an_unknown_version_writes_nothing(
    world: Any, console: TestClient
) -> None:
    db = world.db
    csrf = login(console, db, "admin")
    r = upload(console, csrf, "orders", ORDERS, "1")
    before = counts(db)
    for forged in ("9", "x"):
        bad = console.post(
            "/admin/import/start",
            data={**hidden(r.text), "programme_version": forged, "csrf_token": csrf},
            follow_redirects=False,
        )
        assert bad.status_code == 422, bad.text[:500]
    assert counts(db) == before
    assert queue.run_until_empty(db) == 0
