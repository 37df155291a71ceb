"""Pure referral rules (no database): codes, digests, the verdict, quarters, the document."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalist.documents.errors import DocumentInvalid
from loyalist.referral import config, domain

SHANGHAI = ZoneInfo("Asia/Shanghai")
KEY = b"k" * 32


def test_codes_fit_a_mini_programme_scene_and_avoid_look_alikes() -> None:
    rng = random.Random(7)
    codes = {domain.new_code(rng) for _ in range(2_000)}  # type: ignore[arg-type]
    assert len(codes) == 2_000
    for c in codes:
        assert len(c) == domain.CODE_LENGTH <= domain.MAX_CODE
        assert not set(c) & set("01OILZ2S5B8")
    assert domain.normalise_code("  ab3c ") == "AB3C"


@given(
    paid=st.integers(min_value=0, max_value=10**9),
    refunded=st.integers(min_value=0, max_value=10**9),
    minimum=st.integers(min_value=1, max_value=10**9),
)
def test_the_verdict_is_net_of_returns(paid: int, refunded: int, minimum: int) -> None:
    refunded = min(refunded, paid)
    v = domain.verdict(paid, refunded, minimum)
    assert v.qualified == (paid - refunded >= minimum)
    assert v.reason == (None if v.qualified else "order_returned")
    # Returning more never turns a refusal into a qualification.
    if not v.qualified:
        assert not domain.verdict(paid, min(paid, refunded + 1), minimum).qualified


@given(
    kind=st.sampled_from(config.SIGNAL_KINDS),
    value=st.text(min_size=1, max_size=40).filter(lambda t: t.strip()),
)
def test_digests_ignore_spelling_but_not_the_kind(kind: str, value: str) -> None:
    d = domain.digest(KEY, kind, value)
    assert len(d) == 64 and set(d) <= set("0123456789abcdef")
    assert domain.digest(KEY, kind, f"  {value.upper()}  ") == domain.digest(
        KEY, kind, value.upper()
    )
    other = "address" if kind != "address" else "device_id"
    assert domain.digest(KEY, other, value) != d
    assert domain.digest(b"x" * 32, kind, value) != d


def test_shared_kinds_are_the_watched_kinds_in_common() -> None:
    a = {("device_id", "d1"), ("address", "a1"), ("phone", "p1")}
    b = {("device_id", "d1"), ("address", "a2"), ("phone", "p1")}
    assert domain.shared_kinds(a, b, ["device_id", "phone", "address"]) == ["device_id", "phone"]
    assert domain.shared_kinds(a, b, ["address"]) == []


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31)))
def test_quarters_follow_the_programme_zone(naive: datetime) -> None:
    at = naive.replace(tzinfo=UTC)
    period = domain.quarter_of(at, SHANGHAI)
    start, end = domain.quarter_bounds(period, SHANGHAI)
    assert start <= at < end
    assert domain.previous_quarter(at, SHANGHAI) == domain.quarter_of(
        start - timedelta(seconds=1), SHANGHAI
    )


def test_quarter_boundary_is_midnight_in_shanghai() -> None:
    assert domain.quarter_bounds("2026Q3", SHANGHAI) == (
        datetime(2026, 6, 30, 16, 0, tzinfo=UTC),
        datetime(2026, 9, 30, 16, 0, tzinfo=UTC),
    )
    assert domain.quarter_of(datetime(2026, 6, 30, 15, 59, tzinfo=UTC), SHANGHAI) == "2026Q2"
    assert domain.quarter_of(datetime(2026, 6, 30, 16, 0, tzinfo=UTC), SHANGHAI) == "2026Q3"


def test_share_links_and_qr_codes_are_made_here() -> None:
    link = domain.share_link("/m/join?ref={code}", "AB34CDEF", "https://club.example.cn/")
    assert link == "https://club.example.cn/m/join?ref=AB34CDEF"
    assert domain.share_link("https://x.cn/r/{code}", "AB", "http://ignored") == "https://x.cn/r/AB"
    assert domain.qr_png(link).startswith(b"\x89PNG\r\n\x1a\n")
    assert domain.qr_svg(link).startswith("<svg")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"referral": {"qualify": "join"}}, "referral.qualify"),
        ({"referral": {"min_order_minor": 0}}, "referral.min_order_minor"),
        ({"referral": {"levels": 3}}, "referral.levels"),
        ({"referral": {"leaders": {"count": "attributed"}}}, "referral.leaders.count"),
        ({"referral": {"share_url": "/m/join"}}, "referral.share_url"),
        (
            {"referral": {"rewards": {"friend": [{"action": "nope", "params": {}}]}}},
            "referral.rewards.friend.0.action",
        ),
        (
            {
                "referral": {
                    "levels": 2,
                    "rewards": {"upline": [{"action": "award_points", "params": {"points": 5}}]},
                }
            },
            "referral.rewards.upline.0.params.reason",
        ),
        (
            {"referral": {"rewards": {"upline": [{"action": "add_tag", "params": {"tag": "x"}}]}}},
            "referral.rewards.upline",
        ),
        (
            {
                "groups": [
                    {
                        "code": "g",
                        "name": {"zh_CN": "团", "en": "G"},
                        "size": 1,
                        "hours": 1,
                        "rewards": [{"action": "add_tag", "params": {"tag": "x"}}],
                    }
                ]
            },
            "groups.0.size",
        ),
    ],
)
def test_head_count_rules_deep_levels_and_bad_actions_are_refused(
    doc: dict[str, object], field: str
) -> None:
    with pytest.raises(DocumentInvalid) as exc:
        config.parse(doc)
    assert field in [e.field for e in exc.value.errors], exc.value.errors


def test_the_defaults_are_a_valid_document() -> None:
    doc = config.parse({})
    assert doc.referral.qualify == "first_order" and doc.referral.levels == 1
    assert doc.referral.hold_on_shared == list(config.SIGNAL_KINDS)
