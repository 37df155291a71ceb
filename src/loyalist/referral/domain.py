"""Pure referral rules: codes, identifier digests, the qualification verdict, quarters, QR."""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

# Letters and digits that cannot be misread for each other (no 0/O, 1/I/L, 2/Z, 5/S, 8/B).
CODE_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"
CODE_LENGTH = 8  # 25^8 ≈ 1.5e11 codes; at most 32 characters fit a mini-programme QR scene
MAX_CODE = 32


def new_code(rng: secrets.SystemRandom | None = None) -> str:
    r = rng or secrets.SystemRandom()
    return "".join(r.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    """Codes are matched without regard to case or surrounding blanks."""
    return code.strip().upper()


def normalise_signal(kind: str, value: str) -> str:
    """One spelling per identifier: blanks folded, case ignored (an address typed twice by
    the same person should match), a phone's digits only."""
    text = " ".join(value.split()).casefold()
    if kind == "phone":
        digits = "".join(ch for ch in text if ch.isdigit())
        return digits[-11:] if len(digits) >= 11 else digits
    return text


def digest(key: bytes, kind: str, value: str) -> str:
    """A keyed digest of an identifier: comparable, never the identifier in clear."""
    msg = f"{kind}\x00{normalise_signal(kind, value)}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def shared_kinds(
    referrer: set[tuple[str, str]], friend: set[tuple[str, str]], watched: Sequence[str]
) -> list[str]:
    """The kinds of identifier (of those watched) that referrer and friend share, sorted."""
    return sorted({k for k, d in referrer & friend if k in watched})


@dataclass(frozen=True, slots=True)
class Verdict:
    qualified: bool
    reason: str | None  # why not: order_returned


def verdict(paid_minor: int, refunded_minor: int, min_order_minor: int) -> Verdict:
    """The friend's first order qualifies when what stays paid after returns reaches the
    programme's minimum."""
    net = paid_minor - refunded_minor
    if net >= min_order_minor:
        return Verdict(True, None)
    return Verdict(False, "order_returned")


def window_end(occurred_at: datetime, days: int) -> datetime:
    """When the order's return window closes: ``days`` after it."""
    return occurred_at + timedelta(days=days)


def quarter_of(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


def previous_quarter(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    q = (local.month - 1) // 3 + 1
    return f"{local.year - 1}Q4" if q == 1 else f"{local.year}Q{q - 1}"


def quarter_bounds(period: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a quarter such as ``2026Q2`` in the programme's zone, as UTC."""
    year, q = int(period[:4]), int(period[5])
    start = date(year, 3 * (q - 1) + 1, 1)
    end = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)

    def utc(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)

    return utc(start), utc(end)


def share_link(template: str, code: str, base_url: str) -> str:
    """The share link: the document's template with the code; a relative one gets the
    site's base URL."""
    link = template.replace("{code}", code)
    if link.startswith("/"):
        return base_url.rstrip("/") + link
    return link


def qr_svg(text: str) -> str:
    import segno  # with the first QR code, not when the server starts (memory, issue 11)

    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="svg", scale=4, border=2, xmldecl=False)
    return buf.getvalue().decode()


def qr_png(text: str, scale: int = 6) -> bytes:
    import segno

    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()
