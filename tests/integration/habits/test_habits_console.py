"""Console: the habits page (document, badges, challenges, boards), publishing from YAML
with errors by field path (nothing written), permissions, and the member's badges in the
360 view — in Chinese and English."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from tests.console import console_client, login, make_users, post
from tests.integration.habits.habits_support import publish
from tests.integration.habits.test_habits_badges import DOC, drain, order
from tests.itest import counts, new_member


@pytest.fixture
def console(world: Any) -> Iterator[TestClient]:
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def test_habits_page_publish_and_member_badges(
    world: Any, console: TestClient, client: Any, clock: Any
) -> None:
    publish(world.db, DOC)
    mid = new_member(client, "13500000001")
    order(client, "c1", mid, "coffee", "2026-06-10T09:00:00+08:00")
    order(client, "c2", mid, "tea", "2026-06-10T10:00:00+08:00")
    drain(world.db)
    csrf = login(console, world.db, "admin")
    page = console.get("/admin/habits")
    assert page.status_code == 200
    assert 'data-testid="habits-version">v1<' in page.text
    assert '<tr data-badge="regular">' in page.text and "常客" in page.text
    assert '<tr data-challenge="june-3">' in page.text
    member = console.get(f"/admin/members/{mid}")
    assert 'data-testid="member-habits"' in member.text
    assert "★ 常客" in member.text and "★ 探索家" in member.text
    assert "六月消费三次: 2 / 3" in member.text

    # invalid: refused with the path, nothing written
    bad = {**DOC, "badges": [{**DOC["badges"][0], "criteria": {"gte": {"orderz": 1}}}]}
    before = counts(world.db)
    r = post(console, "/admin/habits", csrf, {"document": yaml.safe_dump(bad, allow_unicode=True)})
    assert r.status_code == 422
    assert 'data-testid="form-errors"' in r.text and "badges.0.criteria.gte" in r.text
    assert counts(world.db) == before
    r = post(console, "/admin/habits", csrf, {"document": "checkins: [unclosed"})
    assert r.status_code == 422 and "not valid YAML" in r.text
    assert counts(world.db) == before

    # valid: version 2, then the same again changes nothing
    good = {**DOC, "checkins": {"day_start": "05:00"}}
    r = post(console, "/admin/habits", csrf, {"document": yaml.safe_dump(good), "note": "5am"})
    assert (r.status_code, r.headers["location"]) == (303, "/admin/habits?notice=published&v=2")
    r = post(console, "/admin/habits", csrf, {"document": yaml.safe_dump(good)})
    assert r.headers["location"] == "/admin/habits?notice=unchanged&v=2"
    page = console.get("/admin/habits")
    assert 'data-testid="habits-version">v2<' in page.text and "05:00" in page.text

    console.post("/admin/lang", data={"lang": "en", "csrf_token": csrf, "next": "/admin/habits"})
    page = console.get("/admin/habits")
    assert "Check-ins, badges and leaderboards" in page.text and "Regular" in page.text


def test_only_publishers_may_publish(world: Any, console: TestClient) -> None:
    csrf = login(console, world.db, "analyst")
    assert console.get("/admin/habits").status_code == 200
    before = counts(world.db)
    r = post(console, "/admin/habits", csrf, {"document": "checkins: {day_start: '05:00'}"})
    assert r.status_code == 403
    assert counts(world.db) == before
    r = console.post("/admin/habits", data={"document": "{}"}, follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    assert counts(world.db) == before
