"""Member page sign-in: one-time codes are single-use, expire, resist guessing and are
rate-limited; CSRF on every POST; session cookie flags."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.integration.member_web.conftest import (
    csrf_of,
    last_code,
    make_member,
    message_count,
    request_code,
    sign_in,
)

from loyalist.member_web import service as signin
from loyalist.models import MemberLoginCode, MemberSession, Message

Clients = Callable[..., TestClient]


def _count(db: Any, model: Any) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _verify(client: TestClient, page_html: str, e164: str, code: str) -> Any:
    return client.post(
        "/m/signin/code", data={"csrf": csrf_of(page_html), "phone": e164, "code": code}
    )


def test_a_code_signs_in_once_and_only_once(world: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678", points=3000)
    first = app_client()
    sent = request_code(first, ada.phone)
    assert sent.status_code == 200
    code = last_code(db, ada.e164)
    assert len(code) == 6 and code.isdigit()

    ok = _verify(first, sent.text, ada.e164, code)
    assert ok.status_code == 303 and ok.headers["location"] == "/m"
    assert first.get("/m").status_code == 200

    # The same code again, from another browser: refused, no second session.
    second = app_client()
    again = second.get("/m/signin")
    replay = _verify(second, again.text, ada.e164, code)
    assert replay.status_code == 422
    assert "该号码没有待验证的验证码" in replay.text
    assert "loyalist_member=" not in replay.headers.get("set-cookie", "")
    assert _count(db, MemberSession) == 1


def test_the_code_is_stored_hashed(world: Any, app_client: Clients) -> None:
    ada = make_member(world.db, "13812345678")
    request_code(app_client(), ada.phone)
    code = last_code(world.db, ada.e164)
    with world.db.transaction() as s:
        row = s.scalars(select(MemberLoginCode)).one()
        assert code not in (row.code_hash, row.salt, row.phone_hash)
        assert ada.e164 not in (row.phone_hash, row.ip_hash)
        assert row.expires_at - row.created_at == timedelta(minutes=5)


def test_a_code_expires_after_five_minutes(world: Any, clock: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    c = app_client()
    sent = request_code(c, ada.phone)
    code = last_code(db, ada.e164)

    clock.advance(timedelta(minutes=5))
    late = _verify(c, sent.text, ada.e164, code)

    assert late.status_code == 422
    assert "验证码已过期，请重新获取。" in late.text
    assert _count(db, MemberSession) == 0


def test_a_code_still_works_just_before_it_expires(
    world: Any, clock: Any, app_client: Clients
) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    c = app_client()
    sent = request_code(c, ada.phone)
    clock.advance(timedelta(minutes=4, seconds=59))
    assert _verify(c, sent.text, ada.e164, last_code(db, ada.e164)).status_code == 303


def test_five_wrong_guesses_kill_the_code(world: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    c = app_client()
    sent = request_code(c, ada.phone)
    code = last_code(db, ada.e164)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    for left in (4, 3, 2, 1):
        r = _verify(c, sent.text, ada.e164, wrong)
        assert r.status_code == 422
        assert f"验证码不正确，还可尝试 {left} 次。" in r.text
    fifth = _verify(c, sent.text, ada.e164, wrong)
    assert "错误次数过多，请重新获取验证码。" in fifth.text

    # The right code is now useless too.
    right = _verify(c, sent.text, ada.e164, code)
    assert right.status_code == 422
    assert "错误次数过多" in right.text
    assert _count(db, MemberSession) == 0


def test_a_new_code_replaces_the_previous_one(world: Any, clock: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    c = app_client()
    request_code(c, ada.phone)
    old = last_code(db, ada.e164)
    clock.advance(timedelta(seconds=61))
    sent = request_code(c, ada.phone)
    new = last_code(db, ada.e164)
    assert old != new  # a fresh code was issued (collisions are 1 in a million)
    assert _verify(c, sent.text, ada.e164, old).status_code == 422
    assert _verify(c, sent.text, ada.e164, new).status_code == 303


def test_sending_is_rate_limited_per_phone(world: Any, clock: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    c = app_client()
    assert request_code(c, ada.phone).status_code == 200

    too_soon = request_code(c, ada.phone)
    assert too_soon.status_code == 429
    assert "获取验证码过于频繁，请 60 秒后再试。" in too_soon.text
    assert message_count(db) == 1

    for sent in range(2, 6):  # 5 per hour, one a minute
        clock.advance(timedelta(seconds=61))
        assert request_code(c, ada.phone).status_code == 200, sent
    clock.advance(timedelta(seconds=61))
    sixth = request_code(c, ada.phone)
    assert sixth.status_code == 429
    assert message_count(db) == 5

    clock.advance(timedelta(hours=1))
    assert request_code(c, ada.phone).status_code == 200
    assert message_count(db) == 6


def test_sending_is_rate_limited_per_client_address(world: Any, app_client: Clients) -> None:
    db = world.db
    c = app_client()
    phones = [f"1390000{i:04d}" for i in range(signin.IP_LIMITS[0][1] + 1)]
    for phone in phones[:-1]:
        assert request_code(c, phone).status_code == 200
    refused = request_code(c, phones[-1])
    assert refused.status_code == 429
    assert _count(db, MemberLoginCode) == signin.IP_LIMITS[0][1]


def test_unknown_numbers_get_the_same_answer_and_no_message(
    world: Any, app_client: Clients
) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    c = app_client()
    member = request_code(c, ada.phone)
    other = app_client()
    stranger = request_code(other, "13900001111")

    assert member.status_code == stranger.status_code == 200
    assert "如果 138 **** 5678 已注册会员" in member.text
    assert "如果 139 **** 1111 已注册会员" in stranger.text
    with db.transaction() as s:
        assert [m.recipient for m in s.scalars(select(Message))] == [ada.e164]
    # Guessing for a stranger never signs anyone in.
    assert _verify(other, stranger.text, "+8613900001111", "000000").status_code == 422
    assert _count(db, MemberSession) == 0


def test_an_invalid_phone_is_shown_next_to_the_field(world: Any, app_client: Clients) -> None:
    c = app_client()
    r = request_code(c, "12345")
    assert r.status_code == 422
    assert 'id="phone-error">请输入有效的手机号码。' in r.text
    assert 'aria-invalid="true"' in r.text
    assert _count(world.db, MemberLoginCode) == 0


# -- CSRF ---------------------------------------------------------------------------------

POST_ROUTES = {
    "/m/signin",
    "/m/signin/code",
    "/m/signout",
    "/m/rewards/{code}/redeem",
    "/m/join",
    "/m/join/code",
}


def test_every_post_route_is_known(app_client: Clients) -> None:
    from loyalist.member_web.endpoints import router

    c = app_client()
    posts = {
        r.path
        for r in router.routes
        if getattr(r, "path", "").startswith("/m") and "POST" in getattr(r, "methods", ())
    }
    assert posts == POST_ROUTES
    # and the application serves them: a POST without a token or session is refused
    # (403, or 303 to the sign-in page), never routed nowhere
    for path in POST_ROUTES:
        assert c.post(path.replace("{code}", "X")).status_code in (303, 403), path


def _writes(db: Any) -> tuple[int, ...]:
    from loyalist.models import IdempotencyRecord, LedgerEntry, Redemption

    return tuple(
        _count(db, m)
        for m in (
            MemberLoginCode,
            MemberSession,
            Message,
            Redemption,
            LedgerEntry,
            IdempotencyRecord,
        )
    )


def test_every_post_needs_the_csrf_token(world: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678", points=5000)
    c = app_client()
    sign_in(c, db, ada)
    confirm = c.get("/m/rewards/latte")
    token = confirm.text.split('name="token" value="')[1].split('"')[0]
    # A signed-out browser's double-submit cookie must not pass for a signed-in form.
    anon = c.cookies.get("loyalist_member_csrf")
    before = _writes(db)

    forms = {
        "/m/signin": {"phone": ada.phone},
        "/m/signin/code": {"phone": ada.e164, "code": "000000"},
        "/m/signout": {},
        "/m/rewards/latte/redeem": {"token": token},
    }
    for path, fields in forms.items():
        for csrf in (None, "", "forged-token-0123456789", anon):
            data = dict(fields) if csrf is None else {**fields, "csrf": csrf}
            r = c.post(path, data=data)
            assert r.status_code == 403, (path, csrf, r.status_code)
            assert "页面已过期" in r.text
    assert _writes(db) == before
    assert c.get("/m").status_code == 200  # still signed in: sign-out was refused too

    # Signed out: the sign-in forms need the double-submit cookie's value.
    fresh = app_client()
    fresh.get("/m/signin")
    for path, fields in list(forms.items())[:2]:
        r = fresh.post(path, data={**fields, "csrf": "forged-token-0123456789"})
        assert r.status_code == 403, path
    assert _writes(db) == before


# -- cookies ------------------------------------------------------------------------------


def _set_cookie(response: Any, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no {name} cookie set")


def test_session_cookie_flags(world: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        c = app_client(base)
        page = c.get("/m/signin")
        csrf_cookie = _set_cookie(page, "loyalist_member_csrf").lower()
        assert "httponly" in csrf_cookie and "samesite=lax" in csrf_cookie
        sent = c.post("/m/signin", data={"csrf": csrf_of(page.text), "phone": ada.phone})
        done = _verify(c, sent.text, ada.e164, last_code(db, ada.e164))
        assert done.status_code == 303
        cookie = _set_cookie(done, "loyalist_member")
        flags = [p.strip().lower() for p in cookie.split(";")]
        assert "httponly" in flags
        assert "samesite=lax" in flags
        assert "path=/m" in flags
        assert ("secure" in flags) is secure
        assert len(cookie.split(";")[0].split("=", 1)[1]) >= 40
        db_clock_gap = timedelta(seconds=61)
        from loyalist.kit.clock import clock as global_clock

        global_clock.advance(db_clock_gap)  # the next code for this phone may be sent


def test_sign_out_ends_the_session(world: Any, app_client: Clients) -> None:
    db = world.db
    ada = make_member(db, "13812345678")
    c = app_client()
    sign_in(c, db, ada)
    token = c.cookies.get("loyalist_member")
    home = c.get("/m")
    out = c.post("/m/signout", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 303 and out.headers["location"] == "/m/signin"

    # The old cookie, presented again, no longer works.
    thief = app_client()
    thief.cookies.set("loyalist_member", token or "", path="/m")
    assert thief.get("/m").headers["location"] == "/m/signin"
