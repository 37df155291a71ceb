"""The log and SMTP channels: what they deliver and what they never reveal."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from tests.server import free_port
from tests.smtp_server import Mailbox, smtp_server

from loyalist.messaging.channels import DeliveryFailed, LogChannel, SmtpChannel, mask_address
from loyalist.messaging.settings import MessagingSettings, channel_from_settings


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


def _send(box: Mailbox, locale: str, **kw: object) -> None:
    channel = SmtpChannel(host=box.host, port=box.port, sender="club@example.com", **kw)  # type: ignore[arg-type]
    channel.send("ada@example.com", "signin_code", {"code": "482913", "minutes": 5}, locale)


def test_smtp_channel_delivers_the_code_in_chinese_with_proper_headers(mailbox: Mailbox) -> None:
    _send(mailbox, "zh_CN")

    assert len(mailbox.received) == 1
    got = mailbox.received[0]
    assert (got.mail_from, got.rcpt_tos) == ("club@example.com", ["ada@example.com"])
    # 7-bit clean on the wire: the Chinese subject is an RFC 2047 encoded word and the
    # body UTF-8 in base64, so any relay can carry it.
    assert got.raw.isascii()
    assert b"Subject: =?utf-8?" in got.raw
    msg = got.message
    assert msg["From"] == "club@example.com"
    assert msg["To"] == "ada@example.com"
    assert msg["Subject"] == "登录验证码"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Content-Language"] == "zh-CN"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "base64"
    sent_at = parsedate_to_datetime(msg["Date"])
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@example.com>")
    assert msg.get_content() == (
        "您的登录验证码是 482913，5 分钟内有效。请勿将验证码告诉任何人。\n"
    )


def test_smtp_channel_writes_english_for_english_readers(mailbox: Mailbox) -> None:
    _send(mailbox, "en")

    msg = mailbox.received[0].message
    assert msg["Subject"] == "Your sign-in code"
    assert msg["Content-Language"] == "en"
    assert msg.get_content() == (
        "Your sign-in code is 482913. It expires in 5 minutes. Never share it with anyone.\n"
    )


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_channel_logs_in_when_given_credentials() -> None:
    with smtp_server(users={"mailer": "s3cret"}) as box:
        with pytest.raises(DeliveryFailed):  # the server requires AUTH
            _send(box, "en")
        assert box.received == []
        _send(box, "en", username="mailer", password="s3cret")

    assert box.logins == [("mailer", "s3cret")]
    assert [r.login for r in box.received] == ["mailer"]


def test_smtp_channel_reports_a_refused_recipient(mailbox: Mailbox) -> None:
    mailbox.refuse_rcpt = True
    with pytest.raises(DeliveryFailed):
        _send(mailbox, "en")
    assert mailbox.received == []


def test_smtp_channel_reports_an_unreachable_server() -> None:
    port = free_port()  # nothing listens on it
    channel = SmtpChannel(host="127.0.0.1", port=port, sender="club@example.com", timeout_s=2)
    with pytest.raises(DeliveryFailed):
        channel.send("ada@example.com", "signin_code", {"code": "1", "minutes": 5}, "en")


def test_smtp_channel_never_logs_the_text(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    _send(mailbox, "zh_CN")
    mailbox.refuse_rcpt = True
    with pytest.raises(DeliveryFailed):
        _send(mailbox, "zh_CN")

    # Everything but the test server's own protocol trace ("mail.log").
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    assert "a***@example.com" in logged  # the log capture works and masks the address
    assert "482913" not in logged
    assert "ada@example.com" not in logged


def test_log_channel_masks_the_phone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loyalist.messages")
    channel = LogChannel()
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "for development only" in caplog.records[0].getMessage()
    caplog.clear()

    channel.send("+8613812345678", "signin_code", {"code": "123456", "minutes": 5}, "en")

    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "+86138****5678" in text
    assert "13812345678" not in text
    assert "Your sign-in code is 123456. It expires in 5 minutes." in text


def test_masking_never_shows_the_whole_address() -> None:
    assert mask_address("+8613812345678") == "+86138****5678"
    assert mask_address("ada.lovelace@example.com") == "a***@example.com"
    assert mask_address("12345") == "****"


def test_channel_is_chosen_from_settings() -> None:
    log_channel = channel_from_settings(None, dev_inbox=False, settings=MessagingSettings())  # type: ignore[arg-type]
    assert isinstance(log_channel, LogChannel)
    smtp = channel_from_settings(
        None,  # type: ignore[arg-type]
        dev_inbox=False,
        settings=MessagingSettings(message_channel="smtp", smtp_host="mail.local", smtp_port=2525),
    )
    assert isinstance(smtp, SmtpChannel)
    assert (smtp.host, smtp.port, smtp.address) == ("mail.local", 2525, "email")
