"""The log and SMTP channels: what they deliver and what they never reveal."""

from __future__ import annotations

import logging
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from loyalist.messaging.channels import DeliveryFailed, LogChannel, SmtpChannel, mask_address
from loyalist.messaging.settings import MessagingSettings, channel_from_settings


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to receive one message (EHLO, MAIL, RCPT, DATA, QUIT)."""

    def handle(self) -> None:
        server: _SMTPServer = self.server  # type: ignore[assignment]

        def reply(text: str) -> None:
            self.wfile.write((text + "\r\n").encode())

        reply("220 test ESMTP")
        data: list[bytes] | None = None
        while line := self.rfile.readline():
            if data is not None:
                if line.rstrip(b"\r\n") == b".":
                    server.received.append((server.envelope, b"".join(data)))
                    data = None
                    reply("250 queued")
                else:
                    data.append(line[1:] if line.startswith(b"..") else line)
                continue
            cmd = line.decode().strip()
            verb = cmd.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                reply("250-test")
                reply("250 8BITMIME")
            elif verb == "MAIL":
                server.envelope = [cmd]
                reply("250 ok")
            elif verb == "RCPT":
                server.envelope.append(cmd)
                reply("250 ok")
            elif verb == "DATA":
                data = []
                reply("354 go ahead")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("250 ok")


class _SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.received: list[tuple[list[str], bytes]] = []
        self.envelope: list[str] = []


@pytest.fixture
def smtp_server() -> Iterator[_SMTPServer]:
    server = _SMTPServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_smtp_channel_delivers_the_rendered_code_in_chinese(smtp_server: _SMTPServer) -> None:
    port = smtp_server.server_address[1]
    channel = SmtpChannel(host="127.0.0.1", port=port, sender="club@example.com")

    channel.send("ada@example.com", "signin_code", {"code": "482913", "minutes": 5}, "zh_CN")

    assert len(smtp_server.received) == 1
    envelope, raw = smtp_server.received[0]
    assert [e.upper() for e in envelope] == [
        "MAIL FROM:<CLUB@EXAMPLE.COM>",
        "RCPT TO:<ADA@EXAMPLE.COM>",
    ]
    msg = message_from_bytes(raw, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "登录验证码"
    assert msg["To"] == "ada@example.com"
    body = msg.get_content()
    assert "您的登录验证码是 482913，5 分钟内有效" in body


def test_smtp_channel_reports_a_failed_delivery() -> None:
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as probe:
        port = probe.server_address[1]
    # Nothing listens on the port any more.
    channel = SmtpChannel(host="127.0.0.1", port=port, sender="club@example.com", timeout_s=2)
    with pytest.raises(DeliveryFailed):
        channel.send("ada@example.com", "signin_code", {"code": "1", "minutes": 5}, "en")


def test_log_channel_masks_the_phone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loyalist.messages")
    LogChannel().send("+8613812345678", "signin_code", {"code": "123456", "minutes": 5}, "en")

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
