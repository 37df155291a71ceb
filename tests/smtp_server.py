"""A real SMTP server (aiosmtpd) on a free local port, keeping what it receives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.server import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes  # the message exactly as it came over the wire (after DATA)
    login: str | None

    @property
    def message(self) -> EmailMessage:
        msg = message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class Mailbox:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    refuse_rcpt: bool = False  # answer RCPT with 550
    logins: list[tuple[str, str]] = field(default_factory=list)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.box.refuse_rcpt:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.authenticated and session.auth_data
        self.box.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=bytes(envelope.original_content),
                login=login.login.decode() if isinstance(login, LoginPassword) else None,
            )
        )
        return "250 2.0.0 queued"


@contextmanager
def smtp_server(*, users: dict[str, str] | None = None) -> Iterator[Mailbox]:
    """An SMTP server; with ``users``, AUTH PLAIN/LOGIN is offered (over plain TCP) and
    must succeed before mail is accepted."""
    box = Mailbox("127.0.0.1", free_port())

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert users is not None
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            box.logins.append((user, password))
            if users.get(user) == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    params: dict[str, Any] = {}
    if users is not None:
        params = {
            "authenticator": authenticate,
            "auth_require_tls": False,
            "auth_required": True,
        }
    controller = Controller(_Handler(box), hostname=box.host, port=box.port, **params)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
