"""Pure rules of redemption fulfilment: the counter code and the collection window."""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime, timedelta, tzinfo

from loyalist.kit.localtime import start_of_local_day

# No look-alike characters: no 0/O, 1/I/L.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12  # 12 × log2(31) ≈ 59.4 random bits
CODE_GROUP = 4
_SEPARATORS = re.compile(r"[\s\-_]")
# What people type for a look-alike character, mapped to the one in the alphabet.
_LOOKALIKE = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    """A random counter code, stored without separators."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str | None) -> str:
    """ "ABCD2345WXYZ" → "ABCD-2345-WXYZ" (how people read and type it)."""
    if not code:
        return ""
    return "-".join(code[i : i + CODE_GROUP] for i in range(0, len(code), CODE_GROUP))


def parse_code(text: str) -> str | None:
    """A typed or scanned code in its stored form, or None when it cannot be one.
    Case, spaces and dashes do not matter."""
    raw = _SEPARATORS.sub("", text).upper().translate(_LOOKALIKE)
    if len(raw) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in raw):
        return None
    return raw


def collect_until(redeemed_at: datetime, days: int | None, tz: tzinfo) -> datetime | None:
    """When a voucher stops being collectable: the end of the ``days``-th programme-local
    day after the day it was redeemed (``days`` = 1: until the end of the next day).
    None: no limit."""
    if days is None:
        return None
    day: date = redeemed_at.astimezone(tz).date() + timedelta(days=days + 1)
    return start_of_local_day(tz, day)


def state(
    *, status: str, collected_at: datetime | None, expires_at: datetime | None, now: datetime
) -> str:
    """cancelled | collected | expired | ready"""
    if status == "cancelled":
        return "cancelled"
    if collected_at is not None:
        return "collected"
    if expires_at is not None and now >= expires_at:
        return "expired"
    return "ready"
