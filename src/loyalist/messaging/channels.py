"""One channel interface and its implementations.

A :class:`Channel` delivers a rendered template to one address. ``address`` says which of
a member's addresses it needs (``"phone"`` for SMS-like channels, ``"email"`` for email),
so callers pick the right one. Implementations here:

* :class:`DevInboxChannel` keeps every message in the ``message`` table, shown at
  ``/m/dev/inbox`` when ``LOYALIST_DEV_INBOX=true`` (development, demo, tests).
* :class:`LogChannel` writes the message to the ``loyalist.messages`` logger with the
  address masked (development only: the text itself, e.g. a sign-in code, is logged).
* :class:`SmtpChannel` sends email with the standard library's ``smtplib``.

An SMS gateway is one more class with ``address = "phone"`` and a ``send`` method.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session

from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.messaging import inbox as service
from loyalist.messaging.templates import Rendered, render

Params = Mapping[str, str | int]
log = logging.getLogger("loyalist.messages")


@dataclass(frozen=True, slots=True)
class Outgoing:
    message_id: int
    channel: str
    to: str
    template: str
    locale: str
    subject: str
    body: str
    params: Mapping[str, str | int]
    # What the provider needs: {"template_code", "params"} for SMS, {"template_id",
    # "page", "fields"} for WeChat (values already rendered).
    provider: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    provider_id: str | None
    code: str = "OK"
    detail: str | None = None


class Adapter(Protocol):
    """Delivers a message already rendered and recorded (``messaging.outbox``)."""

    name: str

    def deliver(self, out: Outgoing) -> Receipt: ...


class Channel(Protocol):
    name: str
    address: Literal["phone", "email"]

    def send(self, to: str, template: str, params: Params, locale: str) -> None:
        """Deliver ``template`` rendered with ``params`` in ``locale`` to ``to``."""
        ...

    def deliver(self, out: Outgoing) -> Receipt:
        """Deliver a message already rendered and recorded (``messaging.outbox``)."""
        ...


class DeliveryFailed(RuntimeError):
    """The channel could not hand the message over (the caller may let the user retry).

    ``code`` is the provider's answer (``isv.MOBILE_NUMBER_ILLEGAL``, ``43101`` …),
    ``retry`` whether trying again later can help, ``refused`` whether the recipient
    refused this channel (a WeChat subscription not granted or used up).
    """

    code: str = "failed"
    retry: bool = True
    refused: bool = False


def mask_address(to: str) -> str:
    """``+86138****5678`` for phones, ``a***@example.com`` for email; never the whole thing."""
    if "@" in to:
        local, _, domain = to.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(to) > 8:
        return to[:-8] + "****" + to[-4:]
    return "****"


class DevInboxChannel:
    """Keeps messages in the database for the development inbox page."""

    name = "dev_inbox"

    def __init__(self, db: Database, *, address: Literal["phone", "email"] = "phone") -> None:
        self.db = db
        self.address = address

    def send(self, to: str, template: str, params: Params, locale: str) -> None:
        rendered = render(template, params, locale)

        def keep(session: Session) -> None:
            service.record(
                session,
                channel=self.name,
                to=to,
                template=template,
                params=params,
                locale=locale,
                rendered=rendered,
            )

        self.db.run(keep)
        log.info("message %s to %s kept in the dev inbox", template, mask_address(to))

    def deliver(self, out: Outgoing) -> Receipt:
        # The message row written by the outbox is the inbox entry.
        log.info("message %s to %s kept in the dev inbox", out.template, mask_address(out.to))
        return Receipt(f"inbox-{out.message_id}")


class LogChannel:
    """Writes messages to the log, with the address masked: for development only.

    The message text goes to the log in full (a sign-in code included), so the channel
    makes sure it is seen: when nothing has configured logging for ``loyalist.messages``
    (``loyalist serve`` configures only uvicorn's own loggers), it adds a handler that
    writes to standard error. Production uses a delivering channel (SMTP), which never
    logs the text.
    """

    name = "log"

    def __init__(self, *, address: Literal["phone", "email"] = "phone") -> None:
        self.address = address
        if not log.hasHandlers():
            handler = logging.StreamHandler()
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            log.addHandler(handler)
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)
        log.warning(
            "message channel 'log': message texts, sign-in codes included, are written to "
            "the log; for development only (set LOYALIST_MESSAGE_CHANNEL=smtp in production)"
        )

    def send(self, to: str, template: str, params: Params, locale: str) -> None:
        rendered = render(template, params, locale)
        log.info("message %s to %s: %s", template, mask_address(to), rendered.body)

    def deliver(self, out: Outgoing) -> Receipt:
        log.info("message %s to %s: %s", out.template, mask_address(out.to), out.body)
        return Receipt(f"log-{out.message_id}")


class SmtpChannel:
    """Email through an SMTP server (plain, STARTTLS or implicit TLS)."""

    name = "smtp"
    address: Literal["phone", "email"] = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int = 25,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        security: Literal["none", "starttls", "tls"] = "none",
        timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.security = security
        self.timeout_s = timeout_s

    def build(self, to: str, template: str, params: Params, locale: str) -> EmailMessage:
        return self.compose(to, render(template, params, locale), locale)

    def compose(self, to: str, rendered: Rendered, locale: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = rendered.subject
        msg["Date"] = format_datetime(utcnow())  # "+0000": UTC, stated
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        # UTF-8 in base64: readable by every server, 8BITMIME or not.
        msg.set_content(rendered.body, charset="utf-8", cte="base64")
        msg["Content-Language"] = "en" if locale == "en" else "zh-CN"
        return msg

    def send(self, to: str, template: str, params: Params, locale: str) -> None:
        self._submit(self.build(to, template, params, locale), to, template)

    def deliver(self, out: Outgoing) -> Receipt:
        msg = self.compose(out.to, Rendered(out.subject, out.body), out.locale)
        self._submit(msg, out.to, out.template)
        return Receipt(str(msg["Message-ID"]), "250")

    def _submit(self, msg: EmailMessage, to: str, template: str) -> None:
        import smtplib  # with the first email, not when the server starts (issue 11)

        try:
            smtp: smtplib.SMTP
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    timeout=self.timeout_s,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning(
                "message %s to %s not sent: %s", template, mask_address(to), type(exc).__name__
            )
            failed = DeliveryFailed(f"SMTP delivery failed: {type(exc).__name__}")
            failed.code = type(exc).__name__
            # A recipient refused (5xx) will not be accepted later either.
            failed.retry = not isinstance(exc, smtplib.SMTPRecipientsRefused)
            raise failed from exc
        log.info("message %s to %s sent by SMTP", template, mask_address(to))
