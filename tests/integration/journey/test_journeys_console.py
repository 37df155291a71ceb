"""Console: journeys list, the editor's dry run and publish, pause/resume, the funnel and
the experiment readout; analysts read but cannot publish; zh-CN and en."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.console import console_client, login, make_users, post
from tests.itest import counts, new_member

from loyalist.admin.journeys import STARTER


@pytest.fixture
def console(world: Any) -> Iterator[TestClient]:
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def test_build_dry_run_publish_pause_and_see_the_funnel(
    world: Any, client: Any, console: TestClient
) -> None:
    mid = new_member(client, "13800000001")
    csrf = login(console, world.db, "admin")
    page = console.get("/admin/journeys")
    assert page.status_code == 200 and "还没有旅程" in page.text
    new = console.get("/admin/journeys/new")
    assert "winback_offer" in new.text
    before = counts(world.db)
    dry = post(
        console,
        "/admin/journeys/editor",
        csrf,
        {"document": STARTER, "do": "dry_run", "member_id": str(mid), "events": ""},
    )
    assert dry.status_code == 200, dry.text[:500]
    assert 'data-testid="dry-result"' in dry.text
    assert "hash(winback_offer, member" in dry.text
    assert counts(world.db) == before
    pub = post(console, "/admin/journeys/editor", csrf, {"document": STARTER, "do": "publish"})
    assert (
        pub.status_code == 303
        and pub.headers["location"] == "/admin/journeys/win_back?notice=published"
    )
    shown = console.get("/admin/journeys/win_back")
    assert shown.status_code == 200
    assert 'data-step="offer_ab"' in shown.text and "A/B 分流" in shown.text
    assert 'data-testid="readout"' in shown.text
    r = post(console, "/admin/journeys/win_back/pause", csrf)
    assert r.status_code == 303
    assert "已暂停" in console.get("/admin/journeys/win_back").text
    post(console, "/admin/journeys/win_back/resume", csrf)
    assert "运行中" in console.get("/admin/journeys").text


def test_invalid_drafts_show_their_paths_and_write_nothing(world: Any, console: TestClient) -> None:
    csrf = login(console, world.db, "admin")
    before = counts(world.db)
    bad = STARTER.replace("else: reminder", "else: nowhere")
    r = post(console, "/admin/journeys/editor", csrf, {"document": bad, "do": "publish"})
    assert r.status_code == 422
    assert 'data-error="journey.steps.2.else"' in r.text
    r = post(console, "/admin/journeys/editor", csrf, {"document": "key: [", "do": "publish"})
    assert r.status_code == 422 and 'data-error="yaml"' in r.text
    assert counts(world.db) == before


def test_analysts_read_but_cannot_publish_or_pause(world: Any, console: TestClient) -> None:
    admin_csrf = login(console, world.db, "admin")
    post(console, "/admin/journeys/editor", admin_csrf, {"document": STARTER, "do": "publish"})
    console.cookies.clear()
    csrf = login(console, world.db, "analyst")
    assert console.get("/admin/journeys/win_back").status_code == 200
    before = counts(world.db)
    r = post(
        console,
        "/admin/journeys/editor",
        csrf,
        {"document": STARTER.replace("60 天", "x"), "do": "publish"},
    )
    assert r.status_code == 403
    assert post(console, "/admin/journeys/win_back/pause", csrf).status_code == 403
    assert counts(world.db) == before
