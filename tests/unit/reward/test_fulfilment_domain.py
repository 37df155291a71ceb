"""Counter codes and the collection window (pure rules)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from loyalist.reward import domain

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_codes_have_no_lookalikes_and_enough_entropy() -> None:
    assert not set("01OIL") & set(domain.CODE_ALPHABET)
    assert domain.CODE_LENGTH * math.log2(len(domain.CODE_ALPHABET)) >= 40
    codes = {domain.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 12 and set(c) <= set(domain.CODE_ALPHABET) for c in codes)


@given(st.text(alphabet=domain.CODE_ALPHABET, min_size=12, max_size=12))
def test_a_formatted_code_parses_back_however_it_is_typed(code: str) -> None:
    shown = domain.format_code(code)
    assert shown.count("-") == 2 and shown.replace("-", "") == code
    assert domain.parse_code(shown) == code
    assert domain.parse_code(shown.lower().replace("-", " ")) == code


def test_lookalikes_typed_by_people_are_read_as_the_real_character() -> None:
    assert domain.parse_code("ABCD-O2IL-WXYZ") is None  # 0 and 1 are not in the alphabet
    assert domain.parse_code("abcd 2345 wxyz") == "ABCD2345WXYZ"
    assert domain.parse_code("ABCD2345WXY") is None
    assert domain.parse_code("") is None


def test_collection_window_in_programme_days() -> None:
    at = datetime(2026, 6, 10, 15, 59, tzinfo=UTC)  # 23:59 on 10 June in Shanghai
    assert domain.collect_until(at, None, SHANGHAI) is None
    assert domain.collect_until(at, 1, SHANGHAI) == datetime(2026, 6, 11, 16, 0, tzinfo=UTC)
    late = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)  # 00:00 on 11 June in Shanghai
    assert domain.collect_until(late, 1, SHANGHAI) == datetime(2026, 6, 12, 16, 0, tzinfo=UTC)


def test_state() -> None:
    now = datetime(2026, 6, 10, tzinfo=UTC)
    kw: dict[str, datetime | None] = {"collected_at": None, "expires_at": None}
    assert domain.state(status="completed", now=now, **kw) == "ready"
    assert domain.state(status="cancelled", now=now, **kw) == "cancelled"
    assert (
        domain.state(status="completed", now=now, collected_at=now, expires_at=now) == "collected"
    )
    assert domain.state(status="completed", now=now, collected_at=None, expires_at=now) == "expired"
