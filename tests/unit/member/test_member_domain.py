import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalist.member.domain import (
    InvalidIdentity,
    mask_phone,
    normalise_email,
    normalise_identity,
    normalise_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "+8613812345678"),
        ("138 1234 5678", "+8613812345678"),
        ("138-1234-5678", "+8613812345678"),
        ("+86 138 1234 5678", "+8613812345678"),
        ("008613812345678", "+8613812345678"),
        ("+14155552671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_valid_phones_normalise_to_e164(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "12812345678",  # no mainland mobile starts with 12
        "1381234567",  # ten digits
        "4155552671",  # no country code and not a mainland mobile
        "+8610123456",  # a mainland landline is not a mobile
        "+1415555",  # too short
        "phone",
        "",
    ],
)
def test_invalid_phones_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentity):
        normalise_phone(raw)


@given(st.integers(min_value=3, max_value=9), st.integers(min_value=0, max_value=999_999_999))
def test_every_mainland_mobile_pattern_is_accepted(second: int, rest: int) -> None:
    number = f"1{second}{rest:09d}"
    assert normalise_phone(number) == f"+86{number}"


def test_email_domain_is_lowercased_local_part_kept() -> None:
    assert normalise_email(" Li.Na@Example.COM ") == "Li.Na@example.com"
    with pytest.raises(InvalidIdentity):
        normalise_email("not-an-email")


def test_identity_kinds() -> None:
    assert normalise_identity("wechat_openid", " oAbC123 ") == "oAbC123"
    with pytest.raises(InvalidIdentity):
        normalise_identity("fax", "123")
    with pytest.raises(InvalidIdentity):
        normalise_identity("pos_card", " ")


def test_mask_phone_keeps_country_prefix_and_last_four() -> None:
    assert mask_phone("+8613812345678") == "+86138****5678"
    assert mask_phone(None) is None
