from datetime import UTC, datetime, timedelta

import pytest

from loyalist.errors import ValidationFailed
from loyalist.kit.clock import Clock
from loyalist.kit.i18n import negotiate
from loyalist.kit.money import Money
from loyalist.kit.pagination import decode_cursor, encode_cursor, page_request


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    assert decode_cursor(None) is None
    for bad in ["x", "eyJiIjoxfQ", encode_cursor(1)[:-2] + "!!"]:
        with pytest.raises(ValidationFailed) as info:
            decode_cursor(bad)
        assert info.value.errors[0].field == "cursor"


@pytest.mark.parametrize("limit", [0, -1, 201])
def test_page_limit_bounds(limit: int) -> None:
    with pytest.raises(ValidationFailed):
        page_request(None, limit)
    assert page_request(None, None).limit == 50


def test_money_is_integer_minor_units_with_currency() -> None:
    assert Money(12345, "CNY").format() == "123.45 CNY"
    assert Money(-5, "CNY").format() == "-0.05 CNY"
    assert Money(500, "JPY").format() == "500 JPY"
    assert (Money(100, "CNY") + Money(1, "CNY")).amount == 101
    with pytest.raises(ValueError, match="mismatch"):
        Money(1, "CNY") + Money(1, "USD")
    with pytest.raises(TypeError):
        Money(1.5, "CNY")  # type: ignore[arg-type]


def test_clock_freeze_advance_reset() -> None:
    c = Clock()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    c.freeze(at)
    assert c.now() == at
    c.advance(timedelta(days=2))
    assert c.now() == at + timedelta(days=2)
    with pytest.raises(ValueError):
        c.freeze(datetime(2026, 1, 1))
    c.reset()
    assert abs(c.now() - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("header", "pref", "expected"),
    [
        ("en-US,en;q=0.9", None, "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh_CN"),
        ("fr-FR", None, "zh_CN"),
        (None, None, "zh_CN"),
        ("zh-CN", "en", "en"),
        # q-values decide, not the order in the header
        ("en;q=0.5,zh-CN", None, "zh_CN"),
        ("fr-FR,zh-TW;q=0.3,en;q=0.7", None, "en"),
        ("zh;q=0,en-GB;q=0.1", None, "en"),
        ("en;q=bogus,zh-CN;q=0.2", None, "zh_CN"),
    ],
)
def test_language_negotiation(header: str | None, pref: str | None, expected: str) -> None:
    assert negotiate(header, pref) == expected
