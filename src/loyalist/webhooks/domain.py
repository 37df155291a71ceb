"""Webhook rules without I/O: secrets, signatures, the retry schedule, outcomes, addresses.

Follows the Standard Webhooks specification: ``webhook-id``, ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>`` of
``"{id}.{timestamp}.{body}"``, keyed by the base64-decoded part of a ``whsec_`` secret).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
SECRET_BYTES = 32

# The wait before each attempt: the first is immediate, then after each failure the next.
SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(SCHEDULE)
# Answers whose Retry-After header sets the earliest next attempt.
THROTTLED = frozenset({429, 502, 503, 504})
GONE = 410
MAX_URL = 2048
RESPONSE_KEEP = 2048  # characters of an answer's body kept with its attempt
ERROR_KEEP = 500

Verdict = Literal["succeeded", "retry", "failed", "gone"]


# ── secrets and signatures ──────────────────────────────────────────────────────────
def new_secret(nbytes: int = SECRET_BYTES) -> str:
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the bytes its base64 part encodes)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is base64 after whsec_") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per secret in use (two while a rotation overlaps), space-separated."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, msg_id, timestamp, body),
        "user-agent": "Loyalist-Webhooks/1",
    }


# ── the retry schedule ──────────────────────────────────────────────────────────────
def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as delay-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value[:12]))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None


def decide(
    *,
    attempts_in_run: int,
    status_code: int | None,
    retry_after: timedelta | None,
    now: datetime,
    max_retry_after: timedelta,
) -> Decision:
    """What follows an attempt: ``attempts_in_run`` counts it (1 after the first).

    2xx succeeds; 410 means the endpoint is gone (it is disabled); anything else (another
    status, a timeout, a refused connection) is retried on the schedule, and after the
    last attempt the delivery has failed. For 429/502/503/504 the next attempt is not
    before the receiver's Retry-After (cut to ``max_retry_after``).
    """
    if status_code is not None and 200 <= status_code < 300:
        return Decision("succeeded")
    if status_code == GONE:
        return Decision("gone")
    if attempts_in_run >= MAX_ATTEMPTS:
        return Decision("failed")
    delay = SCHEDULE[attempts_in_run]
    if status_code in THROTTLED and retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return Decision("retry", now + delay)


# ── targets ─────────────────────────────────────────────────────────────────────────
def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook target (None when it can, addresses aside)."""
    if len(url) > MAX_URL:
        return f"at most {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are accepted"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not accepted"
    if port == 0:
        return "not a valid port"
    if any(c.isspace() for c in url):
        return "the URL contains whitespace"
    return None


def forbidden_address(address: str) -> bool:
    """Private, loopback, link-local, multicast, reserved, unspecified or otherwise not
    global (an IPv4-mapped IPv6 address is judged by its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def truncate(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"
