"""Opaque cursor pagination over a monotonically increasing integer key."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from loyalist.errors import FieldError, ValidationFailed

MAX_LIMIT = 200
MAX_CURSOR = 2**63 - 1  # the largest 64-bit id


@dataclass(frozen=True)
class PageRequest:
    after: int | None
    limit: int


def encode_cursor(last_id: int) -> str:
    raw = json.dumps({"a": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        value = data["a"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_CURSOR:
            raise ValueError
        return value
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "The pagination cursor is not valid.",
            [FieldError("cursor", "not a cursor returned by this API", "invalid_cursor")],
        ) from exc


def page_request(cursor: str | None, limit: int | None, default: int = 50) -> PageRequest:
    lim = default if limit is None else limit
    if lim < 1 or lim > MAX_LIMIT:
        raise ValidationFailed(
            "limit is out of range.",
            [FieldError("limit", f"must be between 1 and {MAX_LIMIT}", "out_of_range")],
        )
    return PageRequest(after=decode_cursor(cursor), limit=lim)
