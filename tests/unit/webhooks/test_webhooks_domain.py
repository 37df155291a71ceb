"""Webhook rules without I/O: secrets, signatures (checked by the standardwebhooks package),
the retry schedule, Retry-After, target URLs and addresses."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from loyalist.webhooks import domain

NOW = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)
CAP = timedelta(hours=24)


def test_a_new_secret_is_whsec_and_base64_of_32_random_bytes() -> None:
    a, b = domain.new_secret(), domain.new_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a[6:], validate=True)) == 32
    assert len(domain.secret_key(domain.new_secret(64))) == 64
    with pytest.raises(ValueError):
        domain.new_secret(23)
    with pytest.raises(ValueError):
        domain.new_secret(65)


@pytest.mark.parametrize(
    "bad", ["abc", "whsec_", "whsec_***", "whsec_" + base64.b64encode(b"x" * 10).decode()]
)
def test_secret_key_refuses_what_is_not_a_secret(bad: str) -> None:
    with pytest.raises(ValueError):
        domain.secret_key(bad)


def _verify(secret: str, headers: dict[str, str], body: bytes, at: datetime) -> object:
    """standardwebhooks' verify, its clock set to ``at`` (it checks the timestamp)."""
    import standardwebhooks.webhooks as sw

    class At(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return at

    real = sw.datetime
    sw.datetime = At  # type: ignore[misc]
    try:
        return Webhook(secret).verify(body, headers)
    finally:
        sw.datetime = real  # type: ignore[misc]


def test_signature_verifies_with_the_standardwebhooks_package() -> None:
    secret = domain.new_secret()
    body = '{"id":"e1","data":{"名":"积分"}}'.encode()
    ts = int(NOW.timestamp())
    headers = domain.headers([secret], "e1", ts, body)
    assert headers["webhook-id"] == "e1"
    assert headers["webhook-timestamp"] == str(ts)
    assert headers["content-type"] == "application/json"
    assert _verify(secret, headers, body, NOW) == {"id": "e1", "data": {"名": "积分"}}
    # the package's own signature is the same string
    assert headers["webhook-signature"] == Webhook(secret).sign("e1", NOW, body)


def test_a_changed_body_id_or_timestamp_does_not_verify() -> None:
    secret = domain.new_secret()
    body = b'{"a":1}'
    ts = int(NOW.timestamp())
    good = domain.headers([secret], "e1", ts, body)
    with pytest.raises(WebhookVerificationError):
        _verify(secret, good, b'{"a":2}', NOW)
    with pytest.raises(WebhookVerificationError):
        _verify(secret, {**good, "webhook-id": "e2"}, body, NOW)
    with pytest.raises(WebhookVerificationError):
        _verify(secret, {**good, "webhook-timestamp": str(ts + 1)}, body, NOW)
    with pytest.raises(WebhookVerificationError):
        _verify(domain.new_secret(), good, body, NOW)


def test_two_secrets_give_two_signatures_each_verifies() -> None:
    new, old = domain.new_secret(), domain.new_secret()
    body = b"{}"
    headers = domain.headers([new, old], "e1", int(NOW.timestamp()), body)
    sigs = headers["webhook-signature"].split(" ")
    assert len(sigs) == 2 and all(s.startswith("v1,") for s in sigs)
    assert _verify(new, headers, body, NOW) == {}
    assert _verify(old, headers, body, NOW) == {}


def test_the_schedule_is_the_standard_one() -> None:
    assert [int(d.total_seconds()) for d in domain.SCHEDULE] == [
        0,
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        50400,
        72000,
        86400,
    ]


def test_each_failure_waits_the_next_delay_and_the_tenth_fails() -> None:
    for n in range(1, 10):
        d = domain.decide(
            attempts_in_run=n, status_code=500, retry_after=None, now=NOW, max_retry_after=CAP
        )
        assert d == domain.Decision("retry", NOW + domain.SCHEDULE[n])
    last = domain.decide(
        attempts_in_run=10, status_code=None, retry_after=None, now=NOW, max_retry_after=CAP
    )
    assert last == domain.Decision("failed")


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_2xx_succeeds(code: int) -> None:
    d = domain.decide(
        attempts_in_run=10, status_code=code, retry_after=None, now=NOW, max_retry_after=CAP
    )
    assert d == domain.Decision("succeeded")


def test_410_is_gone_even_on_the_first_attempt() -> None:
    d = domain.decide(
        attempts_in_run=1, status_code=410, retry_after=None, now=NOW, max_retry_after=CAP
    )
    assert d == domain.Decision("gone")


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_throttling_answers_wait_for_retry_after(code: int) -> None:
    d = domain.decide(
        attempts_in_run=1,
        status_code=code,
        retry_after=timedelta(seconds=120),
        now=NOW,
        max_retry_after=CAP,
    )
    assert d.next_attempt_at == NOW + timedelta(seconds=120)
    # never sooner than the schedule
    d = domain.decide(
        attempts_in_run=3,
        status_code=code,
        retry_after=timedelta(seconds=1),
        now=NOW,
        max_retry_after=CAP,
    )
    assert d.next_attempt_at == NOW + timedelta(minutes=30)
    # bounded
    d = domain.decide(
        attempts_in_run=1,
        status_code=code,
        retry_after=timedelta(days=30),
        now=NOW,
        max_retry_after=CAP,
    )
    assert d.next_attempt_at == NOW + CAP


def test_retry_after_is_ignored_for_other_codes() -> None:
    d = domain.decide(
        attempts_in_run=1,
        status_code=500,
        retry_after=timedelta(seconds=120),
        now=NOW,
        max_retry_after=CAP,
    )
    assert d.next_attempt_at == NOW + timedelta(seconds=5)


def test_retry_after_seconds_or_http_date() -> None:
    assert domain.parse_retry_after("120", NOW) == timedelta(seconds=120)
    assert domain.parse_retry_after(" 7 ", NOW) == timedelta(seconds=7)
    assert domain.parse_retry_after("Wed, 10 Jun 2026 04:10:00 GMT", NOW) == timedelta(minutes=10)
    assert domain.parse_retry_after("Wed, 10 Jun 2026 03:00:00 GMT", NOW) == timedelta(0)
    assert domain.parse_retry_after(None, NOW) is None
    assert domain.parse_retry_after("soon", NOW) is None
    assert domain.parse_retry_after("-5", NOW) is None


@given(st.integers(min_value=1, max_value=12), st.integers(min_value=100, max_value=599))
def test_a_decision_is_final_or_strictly_later(n: int, code: int) -> None:
    d = domain.decide(
        attempts_in_run=n, status_code=code, retry_after=None, now=NOW, max_retry_after=CAP
    )
    if 200 <= code < 300:
        assert d.verdict == "succeeded"
    elif code == 410:
        assert d.verdict == "gone"
    elif n >= 10:
        assert d.verdict == "failed" and d.next_attempt_at is None
    else:
        assert d.verdict == "retry" and d.next_attempt_at is not None
        assert d.next_attempt_at > NOW


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.example.com/loyalist", True),
        ("http://example.com:8080/x?y=1", True),
        ("ftp://example.com/x", False),
        ("file:///etc/passwd", False),
        ("javascript:alert(1)", False),
        ("https:///nohost", False),
        ("https://user:pw@example.com/", False),
        ("https://example.com:0/", False),
        ("https://example.com:99999/", False),
        ("https://exa mple.com/", False),
        ("https://example.com/" + "a" * 2100, False),
    ],
)
def test_url_problem(url: str, ok: bool) -> None:
    assert (domain.url_problem(url) is None) is ok


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("ff02::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("8.8.8.8", False),
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_forbidden_address(address: str, forbidden: bool) -> None:
    assert domain.forbidden_address(address) is forbidden
