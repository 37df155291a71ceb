"""The console's messages page (templates, preview per locale) and the member 360 card
with delivery status and provider receipts (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.e2e.console.data import Shop, seed, sign_in
from tests.integration.messaging.test_outbox import Recorder

from loyalist import bootstrap
from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.jobs import queue
from loyalist.kit.db import Database
from loyalist.messaging import outbox
from loyalist.messaging import settings as adapters


@pytest.fixture
def shop(db: Database, clock: Any) -> Shop:
    return seed(db)


@pytest.fixture
def console(db: Database, shop: Shop) -> Iterator[TestClient]:
    bootstrap.configure()
    adapters.use({"sms": Recorder()})
    app = create_app(Settings(database_url=db.url), db=db)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c
    adapters.reset()


def test_templates_preview_in_both_languages(console: TestClient, shop: Shop) -> None:
    sign_in(console, "admin", "zh_CN")
    zh = console.get("/admin/messages?template=points_expiring")
    assert zh.status_code == 200
    assert "您有 1200 积分将于 2026-12-31 过期，请在此之前使用。" in zh.text
    assert "积分即将过期提醒" in zh.text
    assert "免打扰时段 21:00–08:00" in zh.text
    en = console.get("/admin/messages?template=points_expiring&locale=en")
    assert "1200 of your points expire on 2026-12-31. Use them before then." in en.text
    assert console.get("/admin/messages?template=nope").status_code == 404


def test_the_member_360_shows_messages_with_status_reason_and_receipt(
    console: TestClient, shop: Shop, db: Database
) -> None:
    alice = shop.members["alice"]
    with db.transaction() as s:
        sent = outbox.send(s, alice, "points_awarded", {"points": 50, "reason": "问卷"})
        blocked = outbox.send(s, alice, "notice", {"text": "新品"}, purpose="marketing")
    queue.run_until_empty(db)
    sign_in(console, "admin", "zh_CN")
    html = console.get(f"/admin/members/{alice}").text
    assert f'data-message-id="{sent.message_id}"' in html
    assert f"r-{sent.message_id}" in html  # the provider's receipt
    assert "短信“积分到账通知”：已发送" in html  # on the timeline
    assert f'data-message-id="{blocked.message_id}"' in html
    assert "已拦截" in html and "未获同意" in html
