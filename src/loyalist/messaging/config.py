"""Message templates, caps and quiet hours as a versioned document (kind ``messaging``).

Templates are data: per locale (``zh_CN``, ``en``) a subject and a body with ``{name}``
variables, plus what each provider needs (an Aliyun SMS template code and its
parameters, a WeChat template id and its keyword fields). The built-in templates
(sign-in code, points awarded, points expiring, notice) are defaults read from the
package's gettext catalogues; a published ``messaging`` document adds templates or
replaces them by name, and sets caps and quiet hours.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.orm import Session

from loyalist.access.permissions import PROGRAMME_PUBLISH
from loyalist.documents import registry
from loyalist.documents import service as documents
from loyalist.documents.errors import NoVersion
from loyalist.kit.i18n import translations
from loyalist.messaging import domain
from loyalist.messaging.templates import LOCALE_DIR, TEMPLATES

KIND = "messaging"
Channel = Literal["sms", "email", "wechat_template", "wechat_subscribe", "push"]
Purpose = Literal["transactional", "marketing", "personalisation"]
LOCALES = ("zh_CN", "en")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Text(Strict):
    subject: str = Field(default="", max_length=200)
    body: str = Field(min_length=1, max_length=2000)


class SmsSpec(Strict):
    """An Aliyun SMS template: its code (``SMS_…``, approved in Aliyun's console) and
    the value of each of its parameters (text with ``{variables}``)."""

    template_code: str = Field(min_length=1, max_length=64)
    params: dict[str, str] = Field(default_factory=dict)


class WechatSpec(Strict):
    """A WeChat template (official account) or subscribe message (mini programme):
    its template id and the value of each keyword (``thing1``, ``time2`` …)."""

    template_id: str = Field(min_length=1, max_length=128)
    page: str | None = Field(default=None, max_length=256)
    fields: dict[str, str] = Field(min_length=1)

    @model_validator(mode="after")
    def _keywords(self) -> WechatSpec:
        # Check the fixed parts now (the variables are checked when rendered).
        static = {k: v for k, v in self.fields.items() if not domain.variables(v)}
        problems = domain.wechat_field_problems(static)
        keys = {k: "x" for k in self.fields if k not in static}
        problems += [p for p in domain.wechat_field_problems(keys) if "keyword" in p[1]]
        if problems:
            raise ValueError("; ".join(f"fields.{k}: {why}" for k, why in problems))
        return self


def _sms_only() -> list[Channel]:
    return ["sms"]


class TemplateDef(Strict):
    purpose: Purpose = "transactional"
    channels: list[Channel] = Field(default_factory=_sms_only, min_length=1)
    texts: dict[Literal["zh_CN", "en"], Text]
    sms: SmsSpec | None = None
    wechat_template: WechatSpec | None = None
    wechat_subscribe: WechatSpec | None = None
    sample: dict[str, str | int] = Field(default_factory=dict)  # data for the preview

    @model_validator(mode="after")
    def _consistent(self) -> TemplateDef:
        if "zh_CN" not in self.texts:
            raise ValueError("texts: zh_CN is required (the programme's first language)")
        for ch in ("wechat_template", "wechat_subscribe"):
            spec: WechatSpec | None = getattr(self, ch)
            if ch in self.channels and spec is None:
                raise ValueError(f"{ch}: the channel is listed but has no template")
            if spec is not None:
                if self.purpose == "marketing":
                    raise ValueError(f"{ch}: WeChat forbids marketing in {ch} messages")
                words = domain.marketing_words(" ".join(spec.fields.values()))
                if words:
                    raise ValueError(f"{ch}: marketing content is forbidden ({', '.join(words)})")
        return self


class Caps(Strict):
    day: int | None = Field(default=None, ge=0, le=100)
    week: int | None = Field(default=None, ge=0, le=500)


class Quiet(Strict):
    start: str = "21:00"
    end: str = "08:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("a local time HH:MM")
        return v

    def hours(self) -> domain.QuietHours:
        return domain.QuietHours(time.fromisoformat(self.start), time.fromisoformat(self.end))


class MessagingConfig(Strict):
    quiet_hours: Quiet | None = Field(default_factory=Quiet)
    caps: dict[Channel, Caps] = Field(default_factory=dict)
    templates: dict[str, TemplateDef] = Field(default_factory=dict)

    @field_validator("templates")
    @classmethod
    def _names(cls, v: dict[str, TemplateDef]) -> dict[str, TemplateDef]:
        for name in v:
            if not re.match(r"^[a-z][a-z0-9_]{0,63}$", name):
                raise ValueError(f"{name!r}: a template name is lower-case letters, digits, _")
        return v


registry.register(
    registry.Kind(
        name=KIND,
        description="Message templates, frequency caps and quiet hours",
        schema=MessagingConfig,
        permission=PROGRAMME_PUBLISH,
    )
)

_BUILTIN_META: dict[str, dict[str, Any]] = {
    "signin_code": {"purpose": "transactional", "channels": ["sms", "email"]},
    "points_awarded": {"purpose": "transactional", "channels": ["sms", "email"]},
    "notice": {"purpose": "transactional", "channels": ["sms", "email"]},
    "points_expiring": {"purpose": "transactional", "channels": ["sms", "email"]},
    "recommendations": {"purpose": "personalisation", "channels": ["sms", "email"]},
}
_SAMPLES: dict[str, dict[str, str | int]] = {
    "signin_code": {"code": "246810", "minutes": 10},
    "points_awarded": {"points": 500, "reason": "问卷"},
    "notice": {"text": "本周六会员日"},
    "points_expiring": {"points": 1200, "date": "2026-12-31"},
    "recommendations": {"recommendations": "燕麦拿铁、可颂、拿铁一杯"},
}
_PCT = re.compile(r"%\((\w+)\)s")


def builtin_templates() -> dict[str, TemplateDef]:
    """The default templates, texts from the gettext catalogues (``%(x)s`` → ``{x}``)."""
    out: dict[str, TemplateDef] = {}
    for name, (subject_id, body_id) in TEMPLATES.items():
        texts: dict[str, Any] = {}
        for loc in LOCALES:
            t = translations(loc, (LOCALE_DIR,))
            texts[loc] = {
                "subject": _PCT.sub(r"{\1}", t.gettext(subject_id)),
                "body": _PCT.sub(r"{\1}", t.gettext(body_id)),
            }
        meta = _BUILTIN_META.get(name, {"purpose": "transactional"})
        out[name] = TemplateDef.model_validate(
            {**meta, "texts": texts, "sample": _SAMPLES.get(name, {})}
        )
    return out


def current(session: Session) -> MessagingConfig:
    """The latest published configuration over the built-in templates."""
    try:
        data = documents.get(session, KIND).document
        published = MessagingConfig.model_validate(data)
    except NoVersion:
        published = MessagingConfig()
    merged = {**builtin_templates(), **published.templates}
    return published.model_copy(update={"templates": merged})
