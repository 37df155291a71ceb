"""The console's webhooks pages: list, register (the secret shown once), disable, rotate,
replay, delete — for HQ admins only; in Chinese first, and in English."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.console import console_client, login, make_users, post
from tests.integration.webhooks.conftest import Receiver, pump
from tests.itest import counts

from loyalist.admin.web import LANG_COOKIE
from loyalist.kit.db import Database
from loyalist.models import WebhookAttempt, WebhookEndpoint

pytestmark = pytest.mark.usefixtures("allow_private")


def _endpoints(db: Database) -> list[WebhookEndpoint]:
    with db.transaction() as s:
        return list(s.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def test_an_hq_admin_registers_manages_and_replays(
    world: Any, receiver: Receiver, clock: Any
) -> None:
    db = world.db
    make_users(db)
    clock.advance(timedelta(seconds=1))
    with console_client(db) as c:
        csrf = login(c, db, "admin")
        page = c.get("/admin/webhooks")
        assert page.status_code == 200
        assert "注册端点" in page.text and "暂无 Webhook 端点。" in page.text
        assert 'href="/admin/webhooks"' in page.text  # in the navigation
        r = post(
            c,
            "/admin/webhooks",
            csrf,
            {"url": receiver.url, "description": "CRM", "event_types": "member.created"},
        )
        assert r.status_code == 200, r.text[:500]
        secret = re.search(r"<code data-secret>(whsec_[^<]+)</code>", r.text)
        assert secret is not None
        [ep] = _endpoints(db)
        assert (ep.url, ep.description, ep.event_types, ep.scope) == (
            receiver.url,
            "CRM",
            ["member.created"],
            "hq",
        )
        # the secret is not shown again
        assert secret.group(1) not in c.get("/admin/webhooks").text
        assert secret.group(1) not in c.get(f"/admin/webhooks/{ep.id}").text

        r = c.post("/v1/members", json={"phone": "13800002001"})  # no API key: refused
        assert r.status_code == 401
        from tests.support import api_client

        with api_client(db, world.keys["hq"]) as api:
            assert api.post("/v1/members", json={"phone": "13800002001"}).status_code == 201
        pump(db)
        [req] = receiver.requests
        assert req.verify(secret.group(1))["type"] == "member.created"
        detail = c.get(f"/admin/webhooks/{ep.id}")
        assert detail.status_code == 200
        assert 'data-delivery-id="' in detail.text and "成功" in detail.text

        delivery_id = re.search(r'data-delivery-id="(\d+)"', detail.text)
        assert delivery_id is not None
        r = post(c, f"/admin/webhooks/deliveries/{delivery_id.group(1)}/replay", csrf)
        assert (r.status_code, r.headers["location"]) == (
            303,
            f"/admin/webhooks/{ep.id}?notice=replayed",
        )
        pump(db)
        assert [x.webhook_id for x in receiver.requests] == [req.webhook_id] * 2

        r = post(c, f"/admin/webhooks/{ep.id}/rotate", csrf, {"overlap_hours": "2"})
        assert r.status_code == 200
        new = re.search(r"<code data-secret>(whsec_[^<]+)</code>", r.text)
        assert new is not None and new.group(1) != secret.group(1)
        [ep] = _endpoints(db)
        assert ep.previous_secret_until == clock.now() + timedelta(hours=2)

        r = post(c, f"/admin/webhooks/{ep.id}/enabled", csrf, {"enabled": "false"})
        assert r.status_code == 303
        assert _endpoints(db)[0].enabled is False
        assert "端点已停用" in c.get(r.headers["location"]).text

        r = post(c, f"/admin/webhooks/{ep.id}/delete", csrf)
        assert (r.status_code, r.headers["location"]) == (303, "/admin/webhooks?notice=deleted")
        assert _endpoints(db)[0].deleted_at is not None
        assert c.get(f"/admin/webhooks/{ep.id}").status_code == 404


def test_a_bad_url_is_shown_next_to_its_field_and_nothing_is_written(world: Any) -> None:
    db = world.db
    make_users(db)
    with console_client(db) as c:
        csrf = login(c, db, "admin")
        before = counts(db)
        r = post(c, "/admin/webhooks", csrf, {"url": "ftp://example.com/x"})
        assert r.status_code == 422
        assert 'data-error="url"' in r.text
        assert 'value="ftp://example.com/x"' in r.text
        assert counts(db) == before


def test_the_pages_speak_english_too(world: Any) -> None:
    db = world.db
    make_users(db)
    with console_client(db) as c:
        login(c, db, "admin")
        c.cookies.set(LANG_COOKIE, "en")
        r = c.get("/admin/webhooks")
        assert "Register an endpoint" in r.text and "No webhook endpoints." in r.text


@pytest.mark.parametrize("user", ["east.manager", "sh1.staff", "east.agent", "east.analyst"])
def test_other_roles_may_not_see_or_change_webhooks(
    world: Any, receiver: Receiver, user: str
) -> None:
    db = world.db
    make_users(db)
    from tests.support import api_client

    with api_client(db, world.keys["hq"]) as api:
        ep = api.post("/v1/webhooks/endpoints", json={"url": receiver.url}).json()
    with console_client(db) as c:
        csrf = login(c, db, user)
        assert 'href="/admin/webhooks"' not in c.get("/admin/members").text
        before = counts(db)
        assert c.get("/admin/webhooks").status_code == 403
        assert c.get(f"/admin/webhooks/{ep['id']}").status_code == 403
        for url, data in (
            ("/admin/webhooks", {"url": receiver.url}),
            (f"/admin/webhooks/{ep['id']}/enabled", {"enabled": "false"}),
            (f"/admin/webhooks/{ep['id']}/rotate", {"overlap_hours": "1"}),
            (f"/admin/webhooks/{ep['id']}/delete", {}),
            (f"/admin/webhooks/{ep['id']}/replay", {"since": "2026-06-01T00:00"}),
        ):
            assert post(c, url, csrf, data).status_code == 403, url
        assert counts(db) == before
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(WebhookAttempt)) == 0
