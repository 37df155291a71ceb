"""Which channel delivers messages, read from the environment (``LOYALIST_`` prefix)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from loyalist.kit.db import Database
from loyalist.messaging.adapters import AliyunSms, DevInbox, JPush, WeChat
from loyalist.messaging.channels import Adapter, Channel, DevInboxChannel, LogChannel, SmtpChannel


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
    # Aliyun SMS (channel "sms" goes to Aliyun when an access key is set).
    aliyun_sms_access_key_id: str | None = None
    aliyun_sms_access_key_secret: str | None = None
    aliyun_sms_sign_name: str = ""
    aliyun_sms_endpoint: str = "https://dysmsapi.aliyuncs.com/"
    # WeChat official account (template messages) and mini programme (subscribe messages).
    wechat_oa_app_id: str | None = None
    wechat_oa_app_secret: str | None = None
    wechat_mp_app_id: str | None = None
    wechat_mp_app_secret: str | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    # App push through JPush (the member's app_id identity is the push alias).
    jpush_app_key: str | None = None
    jpush_master_secret: str | None = None
    jpush_endpoint: str = "https://api.jpush.cn/v3/push"


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


def adapters_from_settings(
    settings: MessagingSettings | None = None, *, dev_inbox: bool | None = None
) -> dict[str, Adapter]:
    """The adapter delivering each channel in a worker (``messaging.deliver`` jobs).

    The development inbox takes every channel; otherwise email goes by SMTP (or to the
    log), SMS to Aliyun when configured (else the log), WeChat when configured; a
    channel without an adapter is refused at send time (reason
    ``channel_not_configured``).
    """
    if dev_inbox is None:
        from loyalist.config import get_settings

        dev_inbox = get_settings().dev_inbox
    if dev_inbox:
        inbox = DevInbox()
        return {ch: inbox for ch in ("sms", "email", "wechat_template", "wechat_subscribe", "push")}
    s = settings or MessagingSettings()
    found: dict[str, Adapter] = {}
    log_channel = LogChannel() if s.message_channel == "log" else None
    if s.message_channel == "smtp":
        found["email"] = SmtpChannel(
            host=s.smtp_host,
            port=s.smtp_port,
            sender=s.smtp_sender,
            username=s.smtp_username,
            password=s.smtp_password,
            security=s.smtp_security,
            timeout_s=s.smtp_timeout_s,
        )
    elif log_channel is not None:
        found["email"] = log_channel
    if s.aliyun_sms_access_key_id and s.aliyun_sms_access_key_secret:
        found["sms"] = AliyunSms(
            access_key_id=s.aliyun_sms_access_key_id,
            access_key_secret=s.aliyun_sms_access_key_secret,
            sign_name=s.aliyun_sms_sign_name,
            endpoint=s.aliyun_sms_endpoint,
        )
    elif log_channel is not None:
        found["sms"] = log_channel
    if s.wechat_oa_app_id and s.wechat_oa_app_secret:
        found["wechat_template"] = WeChat(
            app_id=s.wechat_oa_app_id,
            app_secret=s.wechat_oa_app_secret,
            kind="template",
            base_url=s.wechat_api_base,
        )
    if s.wechat_mp_app_id and s.wechat_mp_app_secret:
        found["wechat_subscribe"] = WeChat(
            app_id=s.wechat_mp_app_id,
            app_secret=s.wechat_mp_app_secret,
            kind="subscribe",
            base_url=s.wechat_api_base,
        )
    if s.jpush_app_key and s.jpush_master_secret:
        found["push"] = JPush(
            app_key=s.jpush_app_key,
            master_secret=s.jpush_master_secret,
            endpoint=s.jpush_endpoint,
        )
    return found


# -- which adapter delivers each channel --------------------------------------------------

_lock = threading.Lock()
_override: dict[str, Adapter] | None = None
_configured: dict[str, Adapter] | None = None


def use(adapters: Mapping[str, Adapter] | None) -> None:
    """Set the adapters by channel (tests, the demo); None returns to the settings."""
    global _override
    with _lock:
        _override = dict(adapters) if adapters is not None else None


def configured() -> dict[str, Adapter]:
    """The adapters by channel: an override, else built once from the settings."""
    global _configured
    with _lock:
        if _override is not None:
            return _override
        if _configured is None:
            _configured = adapters_from_settings()
        return _configured


def reset() -> None:
    global _configured, _override
    with _lock:
        _configured = None
        _override = None
