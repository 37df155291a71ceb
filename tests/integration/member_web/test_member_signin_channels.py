"""Sign-in codes through the configured channel: by email over a real SMTP server in
production, never written to the application log; only the development log channel
shows them."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.integration.member_web.conftest import csrf_of
from tests.smtp_server import Mailbox, smtp_server

from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.kit.actor import SYSTEM
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.messaging.channels import Channel, LogChannel
from loyalist.messaging.settings import MessagingSettings, channel_from_settings
from loyalist.models import MemberLoginCode, MemberSession, Message, MessageAttempt

CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


def _client(world: Any, channel: Channel) -> TestClient:
    # Production settings: no development inbox.
    app = create_app(Settings(database_url=world.db.url, dev_inbox=False), db=world.db)
    app.state.message_channel = channel
    return TestClient(app, follow_redirects=False)


def _smtp(world: Any, box: Mailbox) -> Channel:
    settings = MessagingSettings(
        message_channel="smtp",
        smtp_host=box.host,
        smtp_port=box.port,
        smtp_sender="悦享会 <club@example.com>",
    )
    return channel_from_settings(world.db, dev_inbox=False, settings=settings)


def _join(world: Any, phone: str, email: str | None) -> int:
    with world.db.transaction() as s:
        data = MemberCreate(phone=phone, email=email, name="测试会员", home_store="sh1")
        return members.create(s, SYSTEM, data).member.id


def _count(world: Any, model: Any) -> int:
    with world.db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _app_log(caplog: pytest.LogCaptureFixture) -> str:
    # Everything the application logged, at any level (not the test SMTP server's trace).
    return "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")


def test_the_code_goes_by_email_and_never_into_the_log(
    world: Any, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _join(world, "13812345678", "ada@example.com")
    with _client(world, _smtp(world, mailbox)) as c:
        form = c.get("/m/signin", headers={"Accept-Language": "zh-CN"})
        sent = c.post("/m/signin", data={"csrf": csrf_of(form.text), "phone": "13812345678"})
        assert sent.status_code == 200
        assert "如果 138 **** 5678 已注册会员" in sent.text

        assert len(mailbox.received) == 1
        mail = mailbox.received[0]
        assert mail.rcpt_tos == ["ada@example.com"]
        msg = mail.message
        assert msg["From"] == "悦享会 <club@example.com>"
        assert msg["Subject"] == "登录验证码"
        body = msg.get_content()
        assert body.startswith("您的登录验证码是 ")
        found = CODE.search(body)
        assert found is not None
        code = found.group(1)

        done = c.post(
            "/m/signin/code",
            data={"csrf": csrf_of(sent.text), "phone": "+8613812345678", "code": code},
        )
        assert done.status_code == 303 and done.headers["location"] == "/m"
        assert c.get("/m").status_code == 200

    # One message on the one path (issue 14): recorded, delivered at once, receipt kept.
    with world.db.transaction() as s:
        rows = [
            (m.channel, m.template, m.status, m.provider_id) for m in s.scalars(select(Message))
        ]
        attempts = [(a.attempt, a.outcome, a.code) for a in s.scalars(select(MessageAttempt))]
    assert rows == [("email", "signin_code", "sent", mail.message["Message-ID"])]
    assert attempts == [(1, "sent", "250")]
    assert _count(world, MemberSession) == 1
    logged = _app_log(caplog)
    assert "a***@example.com" in logged  # the capture works: the send was logged, masked
    assert code not in logged
    assert "13812345678" not in logged
    assert "ada@example.com" not in logged


def test_the_log_channel_does_show_the_code(world: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The control for the test above: the same capture sees the code when the
    development log channel is chosen."""
    caplog.set_level(logging.DEBUG)
    _join(world, "13812345678", None)
    with _client(world, LogChannel()) as c:
        form = c.get("/m/signin")
        sent = c.post("/m/signin", data={"csrf": csrf_of(form.text), "phone": "13812345678"})
        assert sent.status_code == 200
    found = re.search(r"signin_code to \+86138\*\*\*\*5678: .*?(\d{6})", _app_log(caplog))
    assert found is not None
    assert "13812345678" not in _app_log(caplog)


def test_a_member_without_email_gets_the_same_answer_and_no_mail(
    world: Any, mailbox: Mailbox
) -> None:
    _join(world, "13812345678", None)
    with _client(world, _smtp(world, mailbox)) as c:
        form = c.get("/m/signin", headers={"Accept-Language": "zh-CN"})
        sent = c.post("/m/signin", data={"csrf": csrf_of(form.text), "phone": "13812345678"})
    assert sent.status_code == 200
    assert "如果 138 **** 5678 已注册会员" in sent.text
    assert mailbox.received == []
    assert _count(world, MemberLoginCode) == 1  # it still counts against the send limits


def test_a_failed_delivery_is_shown_next_to_the_field(world: Any, mailbox: Mailbox) -> None:
    _join(world, "13812345678", "ada@example.com")
    mailbox.refuse_rcpt = True
    with _client(world, _smtp(world, mailbox)) as c:
        form = c.get("/m/signin", headers={"Accept-Language": "zh-CN"})
        sent = c.post("/m/signin", data={"csrf": csrf_of(form.text), "phone": "13812345678"})
    assert sent.status_code == 503
    assert 'id="phone-error">验证码发送失败，请稍后再试。' in sent.text
    assert mailbox.received == []
