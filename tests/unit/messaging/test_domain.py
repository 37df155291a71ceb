"""Pure rules of message delivery (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalist.messaging import domain

SHANGHAI = ZoneInfo("Asia/Shanghai")
NIGHT = domain.QuietHours(time(21, 0), time(8, 0))


def test_the_aliyun_signature_equals_the_documented_example() -> None:
    """Aliyun's SMS signature documentation: these parameters, secret ``testSecret``."""
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    to_sign = domain.aliyun_string_to_sign("GET", params)
    assert to_sign.startswith("GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML")
    assert "SignName%3D%25E9%2598%25BF%25E9%2587%258C" in to_sign
    assert "Timestamp%3D2017-07-12T02%253A42%253A19Z" in to_sign
    assert domain.aliyun_signature("GET", params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_percent_encoding_follows_aliyun_not_form_encoding() -> None:
    assert domain.percent_encode("a b*c~d") == "a%20b%2Ac~d"


@pytest.mark.parametrize(
    ("local", "release"),
    [
        ((20, 59), None),
        ((21, 0), (11, 8, 0)),
        ((23, 0), (11, 8, 0)),
        ((0, 30), (10, 8, 0)),
        ((7, 59), (10, 8, 0)),
        ((8, 0), None),
        ((12, 0), None),
    ],
)
def test_quiet_hours_over_midnight(
    local: tuple[int, int], release: tuple[int, int, int] | None
) -> None:
    now = datetime(2026, 6, 10, *local, tzinfo=SHANGHAI).astimezone(UTC)
    got = domain.quiet_until(now, SHANGHAI, NIGHT)
    want = (
        None
        if release is None
        else datetime(2026, 6, release[0], release[1], release[2], tzinfo=SHANGHAI)
    )
    assert got == (want.astimezone(UTC) if want else None)


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
    st.times(),
    st.times(),
)
def test_quiet_hours_release_is_the_first_moment_outside(
    naive: datetime, start: time, end: time
) -> None:
    quiet = domain.QuietHours(
        start.replace(second=0, microsecond=0), end.replace(microsecond=0, second=0)
    )
    now = naive.replace(tzinfo=UTC)
    release = domain.quiet_until(now, SHANGHAI, quiet)
    if release is None:
        return
    assert now < release <= now + timedelta(days=1)
    assert release.astimezone(SHANGHAI).time() == quiet.end
    assert domain.quiet_until(release, SHANGHAI, quiet) is None
    assert domain.quiet_until(release - timedelta(seconds=1), SHANGHAI, quiet) is not None


def test_equal_start_and_end_mean_no_quiet_hours() -> None:
    now = datetime(2026, 6, 10, 15, tzinfo=UTC)
    assert domain.quiet_until(now, SHANGHAI, domain.QuietHours(time(9), time(9))) is None
    assert domain.quiet_until(now, SHANGHAI, None) is None


def test_periods_are_local_days_and_iso_weeks() -> None:
    # 2026-06-14 23:30 Shanghai is a Sunday (UTC still says 15:30 the same day);
    # 2026-06-15 00:30 Shanghai is Monday, while UTC is still Sunday 16:30.
    sunday = datetime(2026, 6, 14, 15, 30, tzinfo=UTC)
    monday = datetime(2026, 6, 14, 16, 30, tzinfo=UTC)
    assert domain.day_period(sunday, SHANGHAI) == "d2026-06-14"
    assert domain.day_period(monday, SHANGHAI) == "d2026-06-15"
    assert domain.week_period(sunday, SHANGHAI) == "w2026-W24"
    assert domain.week_period(monday, SHANGHAI) == "w2026-W25"


def test_fill_and_variables() -> None:
    assert domain.variables("{a} and {b} and {a}") == ["a", "b"]
    assert domain.fill("您有 {points} 积分", {"points": 12}) == "您有 12 积分"
    with pytest.raises(domain.MissingVariable) as info:
        domain.fill("{x}{y}", {"x": 1})
    assert info.value.args[0] == "y"


@pytest.mark.parametrize(
    ("fields", "problems"),
    [
        ({"thing1": "会员积分到账"}, []),
        ({"thing1": "一" * 20}, []),
        ({"thing1": "一" * 21}, [("thing1", "at most 20 characters")]),
        ({"character_string2": "ORD-2026-0001"}, []),
        ({"character_string2": "订单"}, [("character_string2", "32 letters, digits or symbols")]),
        ({"number3": "12.50"}, []),
        ({"number3": "12a"}, [("number3", "a number of at most 32 characters")]),
        ({"amount4": "¥100.00"}, []),
        ({"phrase5": "已发货"}, []),
        ({"phrase5": "已经发货了呢"}, [("phrase5", "at most 5 Chinese characters")]),
        ({"time6": "2026年12月6日 15:01"}, []),
        ({"thing7": ""}, [("thing7", "empty")]),
        ({"first": "x"}, [("first", "not a WeChat keyword (e.g. thing1, time2, amount3)")]),
    ],
)
def test_wechat_field_limits(fields: dict[str, str], problems: list[tuple[str, str]]) -> None:
    assert domain.wechat_field_problems(fields) == problems


def test_retry_delays_double_up_to_an_hour() -> None:
    assert [domain.retry_delay(n).total_seconds() for n in range(1, 9)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600,
    ]  # fmt: skip
