"""Which channel delivers messages, read from the environment (``LOYALIST_`` prefix)."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from loyalist.kit.db import Database
from loyalist.messaging.channels import Channel, DevInboxChannel, LogChannel, SmtpChannel


class MessagingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALIST_", env_file=None, extra="ignore")

    # "log" (development: writes the text to the log, address masked) or "smtp".
    # LOYALIST_DEV_INBOX=true overrides both with the development inbox.
    message_channel: Literal["log", "smtp"] = "log"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_sender: str = "loyalist@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout_s: float = 10.0


def channel_from_settings(
    db: Database, *, dev_inbox: bool, settings: MessagingSettings | None = None
) -> Channel:
    if dev_inbox:
        return DevInboxChannel(db)
    s = settings or MessagingSettings()
    if s.message_channel == "smtp":
        return SmtpChannel(
            host=s.smtp_host,
            port=s.smtp_port,
            sender=s.smtp_sender,
            username=s.smtp_username,
            password=s.smtp_password,
            security=s.smtp_security,
            timeout_s=s.smtp_timeout_s,
        )
    return LogChannel()
