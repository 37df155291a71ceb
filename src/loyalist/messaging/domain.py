"""Pure rules of message delivery: purposes and channels, quiet hours, cap periods,
template variables, WeChat field limits, the Aliyun SMS signature, retry delays.

No database, no HTTP: tested as functions (``tests/unit/messaging``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Why a message is sent. Transactional messages (sign-in codes, service replies, receipts)
# need no consent and bypass caps and quiet hours; the others need the member's consent
# for that purpose on the channel.
PURPOSES = ("transactional", "marketing", "personalisation")
# What a member consents to (the consent ledger): issue 13's purposes.
CONSENT_PURPOSES = ("marketing", "personalisation", "analytics")
CHANNELS = ("sms", "email", "wechat_template", "wechat_subscribe", "push")
# The consent channel each delivery channel answers to (the member page's four boxes).
CONSENT_CHANNEL: dict[str, str] = {
    "sms": "sms",
    "email": "email",
    "wechat_template": "wechat",
    "wechat_subscribe": "wechat",
    "push": "push",
}
# Which of the member's addresses a channel needs.
ADDRESS: dict[str, str] = {
    "sms": "phone",
    "email": "email",
    "wechat_template": "wechat_openid",
    "wechat_subscribe": "wechat_openid",
    "push": "app_id",
}
STATUSES = ("queued", "held", "sent", "delivered", "suppressed", "failed", "expired")

# Reasons a message is suppressed (stable codes, shown in the console and logs).
NO_CONSENT = "no_consent"
NO_ADDRESS = "no_address"
CAP_DAY = "cap_day"
CAP_WEEK = "cap_week"
NO_AUTHORISATION = "no_authorisation"
CHANNEL_OFF = "channel_not_configured"


# -- quiet hours -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time  # local wall time the quiet window opens (e.g. 21:00)
    end: time  # local wall time it closes (e.g. 08:00; before start: over midnight)


def quiet_until(now: datetime, zone: ZoneInfo, quiet: QuietHours | None) -> datetime | None:
    """When the quiet window around ``now`` ends (UTC), or None outside it.

    The window is ``[start, end)`` in local wall time; ``start > end`` spans midnight.
    ``start == end`` means no quiet hours.
    """
    if quiet is None or quiet.start == quiet.end:
        return None
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    day = local.date()
    if quiet.start < quiet.end:
        inside = quiet.start <= t < quiet.end
        release_day = day
    else:
        inside = t >= quiet.start or t < quiet.end
        release_day = day + timedelta(days=1) if t >= quiet.start else day
    if not inside:
        return None
    release = datetime.combine(release_day, quiet.end, tzinfo=zone)
    return release.astimezone(UTC)


# -- frequency caps ----------------------------------------------------------------------


def day_period(at: datetime, zone: ZoneInfo) -> str:
    return "d" + at.astimezone(zone).date().isoformat()


def week_period(at: datetime, zone: ZoneInfo) -> str:
    """ISO week of the local date: Monday to Sunday."""
    iso = at.astimezone(zone).date().isocalendar()
    return f"w{iso.year}-W{iso.week:02d}"


def local_date(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


# -- templates ---------------------------------------------------------------------------

VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariable(KeyError):
    """The template needs a variable the data does not give."""


def variables(text: str) -> list[str]:
    """The variables a text uses, in order of first use."""
    seen: list[str] = []
    for m in VARIABLE.finditer(text):
        if m.group(1) not in seen:
            seen.append(m.group(1))
    return seen


def fill(text: str, data: Mapping[str, object]) -> str:
    """``{name}`` replaced by ``data[name]``; a missing one raises MissingVariable."""

    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in data:
            raise MissingVariable(key)
        return str(data[key])

    return VARIABLE.sub(one, text)


# -- WeChat field limits -----------------------------------------------------------------
# Subscribe messages (mini programme) and the official account's template messages since
# 2023 take typed keywords: ``thing3``, ``character_string1``, ``time5`` … Each type has
# the platform's documented limit; a value beyond it is refused with errcode 47003.

_WECHAT_RULES: dict[str, tuple[int, re.Pattern[str] | None, str]] = {
    "thing": (20, None, "at most 20 characters"),
    "character_string": (32, re.compile(r"^[\x21-\x7e]*$"), "32 letters, digits or symbols"),
    "number": (32, re.compile(r"^-?\d+(\.\d+)?$"), "a number of at most 32 characters"),
    "letter": (32, re.compile(r"^[A-Za-z]*$"), "at most 32 letters"),
    "symbol": (5, re.compile(r"^[^\w\s]*$"), "at most 5 symbols"),
    "amount": (
        14,
        re.compile(r"^[¥￥$]?\d{1,10}(\.\d{1,2})?元?$"),
        "an amount: an optional currency sign and at most 10 digits",
    ),
    "phone_number": (17, re.compile(r"^[\d+\-() ]*$"), "a phone number of at most 17 characters"),
    "car_number": (8, None, "at most 8 characters"),
    "phrase": (5, re.compile(r"^[\u4e00-\u9fff]*$"), "at most 5 Chinese characters"),
    "time": (
        32,
        re.compile(r"^[\d年月日:\-/ ]+$"),
        "a date and time such as 2026年12月6日 15:01",
    ),
    "date": (32, re.compile(r"^[\d年月日:\-/ ]+$"), "a date such as 2026年12月6日"),
    "const": (20, None, "at most 20 characters"),
    "name": (10, None, "at most 10 characters"),
}
_WECHAT_KEY = re.compile(r"^([a-z_]+?)(\d+)$")

# WeChat forbids marketing in template and subscribe messages (operations spec: no
# advertising, coupons pushed for sales, "limited time" offers …): words that betray it.
MARKETING_WORDS = ("促销", "优惠", "折扣", "打折", "特价", "秒杀", "抢购", "限时", "红包", "免费领")


def wechat_field_problems(fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every field that breaks the platform's limit, as ``(key, problem)``."""
    problems: list[tuple[str, str]] = []
    for key, value in fields.items():
        m = _WECHAT_KEY.match(key)
        rule = _WECHAT_RULES.get(m.group(1)) if m else None
        if rule is None:
            problems.append((key, "not a WeChat keyword (e.g. thing1, time2, amount3)"))
            continue
        limit, pattern, text = rule
        if not value:
            problems.append((key, "empty"))
        elif len(value) > limit or (pattern is not None and not pattern.match(value)):
            problems.append((key, text))
    return problems


def marketing_words(text: str) -> list[str]:
    return [w for w in MARKETING_WORDS if w in text]


# -- Aliyun SMS (dysmsapi, RPC style, signature version 1.0) -----------------------------


def percent_encode(value: str) -> str:
    """Aliyun's encoding: RFC 3986 unreserved characters kept, space as %20, UTF-8."""
    return urllib.parse.quote(value, safe="-_.~")


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
    )
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def aliyun_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """HMAC-SHA1 of the string to sign under ``secret + "&"``, base64."""
    digest = hmac.new(
        (secret + "&").encode(), aliyun_string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


# Aliyun answers with ``Code``; these are worth retrying, every other non-OK is final.
ALIYUN_RETRY = frozenset(
    {"isp.SYSTEM_ERROR", "isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "ServiceUnavailable"}
)
# WeChat ``errcode``s: token problems (refresh and retry once), busy (retry later).
WECHAT_TOKEN_ERRORS = frozenset({40001, 40014, 42001})
WECHAT_RETRY = frozenset({-1, 45009, 45047})
WECHAT_REFUSED = 43101  # the user refused (or has no subscription left)
WECHAT_NOT_FOLLOWING = 43004  # template message to a user who does not follow the account


# -- retries -----------------------------------------------------------------------------

MAX_ATTEMPTS = 6
RETRY_BASE_S = 30.0
RETRY_CAP_S = 3600.0


def retry_delay(attempt: int) -> timedelta:
    """After attempt ``n`` (1-based) failed: 30 s · 2^(n−1), at most an hour."""
    return timedelta(seconds=min(RETRY_CAP_S, RETRY_BASE_S * 2 ** max(0, attempt - 1)))
