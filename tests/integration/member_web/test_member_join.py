"""Self-registration on /m (phone + one-time code, consents per channel, an optional
referral code kept for the referral feature) and the redemption voucher: its code, QR
and state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.integration.member_web.conftest import (
    csrf_of,
    last_code,
    make_member,
    message_count,
    sign_in,
    token_of,
)
from tests.itest import counts

from loyalist.member import service as members
from loyalist.models import AuditLog, Member
from loyalist.reward import domain

Factory = Callable[..., TestClient]


def _join(client: TestClient, phone: str, **extra: str) -> Any:
    page = client.get("/m/join")
    assert page.status_code == 200
    data = {"csrf": csrf_of(page.text), "phone": phone, "terms": "on", **extra}
    return client.post("/m/join", data=data)


def test_a_new_number_joins_with_consents_and_a_referral_code(
    world: Any, app_client: Factory
) -> None:
    c = app_client()
    sent = _join(c, "139 1111 2222", consent_sms="on", consent_wechat="on", referral="FRIEND-42")
    assert sent.status_code == 200, sent.text
    assert "139 **** 2222" in sent.text  # national format, masked
    code = last_code(world.db, "+8613911112222")
    # the code page carries the choices on to the verification
    assert 'name="consent_sms" value="on"' in sent.text and "FRIEND-42" in sent.text
    wrong = c.post(
        "/m/join/code",
        data={"csrf": csrf_of(sent.text), "phone": "+8613911112222", "code": "000000"},
    )
    assert wrong.status_code == 422
    with world.db.transaction() as s:
        assert s.scalar(select(Member).where(Member.phone == "+8613911112222")) is None
    done = c.post(
        "/m/join/code",
        data={
            "csrf": csrf_of(sent.text),
            "phone": "+8613911112222",
            "code": code,
            "consent_sms": "on",
            "consent_wechat": "on",
            "referral": "FRIEND-42",
        },
    )
    assert (done.status_code, done.headers["location"]) == (303, "/m?joined=1")
    assert c.get("/m").status_code == 200  # signed in
    with world.db.transaction() as s:
        m = s.scalar(select(Member).where(Member.phone == "+8613911112222"))
        assert m is not None
        assert (m.join_channel, m.referral_code) == ("member_page", "FRIEND-42")
        assert members.consents(s, m.id) == {
            "sms": True,
            "email": False,
            "push": False,
            "wechat": True,
        }
        assert (
            s.scalar(
                select(AuditLog.actor)
                .where(AuditLog.action == "member.create")
                .where(AuditLog.object_id == str(m.id))
            )
            == "member:self-registration"
        )


def test_join_refusals_write_nothing_but_the_code_row(world: Any, app_client: Factory) -> None:
    c = app_client()
    page = c.get("/m/join")
    before = counts(world.db)
    for data, field in (
        ({"phone": "12345", "terms": "on"}, "phone-error"),
        ({"phone": "13911113333"}, "terms-error"),
        ({"phone": "13911113333", "terms": "on", "referral": "no spaces!"}, "referral-error"),
    ):
        r = c.post("/m/join", data={"csrf": csrf_of(page.text), **data})
        assert r.status_code == 422 and f'id="{field}"' in r.text, r.text
    assert (
        c.post(
            "/m/join", data={"csrf": "forged", "phone": "13911113333", "terms": "on"}
        ).status_code
        == 403
    )
    assert counts(world.db) == before


def test_an_existing_member_who_joins_is_signed_in_and_not_duplicated(
    world: Any, app_client: Factory
) -> None:
    person = make_member(world.db, "13911114444")
    c = app_client()
    sent = _join(c, person.phone, consent_email="on")
    assert sent.status_code == 200
    done = c.post(
        "/m/join/code",
        data={
            "csrf": csrf_of(sent.text),
            "phone": person.e164,
            "code": last_code(world.db, person.e164),
        },
    )
    assert (done.status_code, done.headers["location"]) == (303, "/m")
    with world.db.transaction() as s:
        assert len(list(s.scalars(select(Member.id).where(Member.phone == person.e164)))) == 1


def test_a_sign_in_code_for_a_non_member_still_never_matches(
    world: Any, app_client: Factory
) -> None:
    c = app_client()
    page = c.get("/m/signin")
    before = message_count(world.db)
    sent = c.post("/m/signin", data={"csrf": csrf_of(page.text), "phone": "13911115555"})
    assert sent.status_code == 200
    assert message_count(world.db) == before  # nothing is sent to a non-member on sign-in


def test_the_redemption_page_shows_the_code_qr_and_state(world: Any, app_client: Factory) -> None:
    person = make_member(world.db, "13911116666", points=5000)
    c = app_client()
    sign_in(c, world.db, person)
    page = c.get("/m/rewards/croissant")
    r = c.post(
        "/m/rewards/croissant/redeem",
        data={"csrf": csrf_of(page.text), "token": token_of(page.text)},
    )
    assert r.status_code == 303
    voucher = c.get(r.headers["location"]).text
    assert 'data-state="ready"' in voucher and "待领取" in voucher
    assert 'src="data:image/png;base64,' in voucher
    shown = voucher.split('data-testid="collect-code">')[1].split("<")[0]
    assert domain.parse_code(shown) is not None
    from tests.support import api_client

    with api_client(world.db, world.keys["sh1"]) as pos:
        assert pos.post("/v1/redemptions/collect", json={"code": shown}).status_code == 200
        assert pos.post("/v1/redemptions/collect", json={"code": shown}).status_code == 409
    voucher = c.get(r.headers["location"]).text
    assert 'data-state="collected"' in voucher and "已于" in voucher
    assert 'src="data:image/png' not in voucher  # no QR once collected
