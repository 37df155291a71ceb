"""Console security over HTTP: a CSRF token on every state-changing form (every POST route of
the console's router), session cookie flags, login lockout, logout, session expiry, and no
personal data in the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.console import PASSWORD, console_client, login, make_users
from tests.itest import counts
from tests.support import api_client

from loyalist.admin.endpoints import router
from loyalist.admin.web import COOKIE, CSRF_HEADER, LOGIN_CSRF_COOKIE
from loyalist.approval import service as approvals
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Job, StaffSession, StaffUser
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCreate
from loyalist.staff import service as staff

PHONE = "13912345678"


def _seed(db: Database) -> dict[str, int]:
    make_users(db)
    with db.transaction() as s:
        m = members.create(s, SYSTEM, MemberCreate(phone=PHONE, name="钱七", home_store="sh1"))
        mid = m.member.id
        members.adjust_points(s, SYSTEM, mid, 20_000, "seed")
        red = rewards.redeem(s, SYSTEM, RedemptionCreate(member_id=mid, reward="upsize"))
        admin2 = staff.actor_for(s, staff.get_by_login(s, "admin2"))
        req = approvals.adjust(s, admin2, mid, 9000, "big")
        assert req.request is not None
        queue.enqueue(s, "security.example", {}, dedupe_key="security-dead")
        job = s.scalars(select(Job)).one()
        job.state = "dead"
        return {"member": mid, "redemption": red.id, "request": req.request.id, "job": job.id}


@pytest.fixture
def ids(world: Any) -> dict[str, int]:
    return _seed(world.db)


# Every POST route but the login form (which has its own double-submit token, tested
# below): a form an HQ admin could submit.
FORMS: dict[str, Callable[[dict[str, int]], tuple[str, dict[str, str]]]] = {
    "/admin/logout": lambda i: ("/admin/logout", {}),
    "/admin/lang": lambda i: ("/admin/lang", {"lang": "en", "next": "/admin"}),
    "/admin/password": lambda i: (
        "/admin/password",
        {"current": PASSWORD, "new": "another-pass-1", "confirm": "another-pass-1"},
    ),
    "/admin/members/{member_id}/adjust": lambda i: (
        f"/admin/members/{i['member']}/adjust",
        {"points": "10", "reason": "csrf"},
    ),
    "/admin/members/{member_id}/tags": lambda i: (
        f"/admin/members/{i['member']}/tags",
        {"add": "csrf"},
    ),
    "/admin/members/{member_id}/edit": lambda i: (
        f"/admin/members/{i['member']}/edit",
        {"city": "苏州"},
    ),
    "/admin/approvals/{request_id}/{decision}": lambda i: (
        f"/admin/approvals/{i['request']}/approve",
        {},
    ),
    "/admin/redemptions/{redemption_id}/cancel": lambda i: (
        f"/admin/redemptions/{i['redemption']}/cancel",
        {"reason": "csrf"},
    ),
    "/admin/programme/edit": lambda i: ("/admin/programme/edit", {"action": "publish"}),
    "/admin/jobs/{job_id}/{action}": lambda i: (f"/admin/jobs/{i['job']}/retry", {}),
    # issue 12: coupons and referrals
    "/admin/coupons/templates/{code}/{action}": lambda i: (
        "/admin/coupons/templates/welcome/pause",
        {},
    ),
    "/admin/members/{member_id}/coupons": lambda i: (
        f"/admin/members/{i['member']}/coupons",
        {"template": "welcome"},
    ),
    "/admin/referrals/{referral_id}/{decision}": lambda i: (
        "/admin/referrals/1/approve",
        {"note": "csrf"},
    ),
    # issue 13: fraud controls (a decision on held points)
    "/admin/fraud/reviews/{review_id}/{decision}": lambda i: (
        "/admin/fraud/reviews/1/approve",
        {"note": "csrf"},
    ),
    # issue 13: identity merge (confirm a merge, undo it, dismiss a duplicate pair)
    "/admin/members/{member_id}/merge": lambda i: (
        f"/admin/members/{i['member']}/merge",
        {"merged_id": str(i["member"] + 1)},
    ),
    "/admin/merges/{merge_id}/undo": lambda i: ("/admin/merges/1/undo", {}),
    "/admin/duplicates/{candidate_id}/dismiss": lambda i: ("/admin/duplicates/1/dismiss", {}),
    # issue 13: erasure (the confirmation form)
    "/admin/members/{member_id}/erase": lambda i: (
        f"/admin/members/{i['member']}/erase",
        {"confirm": "csrf"},
    ),
    # issue 15 item 8: backtest a programme version (queues a job)
    "/admin/backtest": lambda i: ("/admin/backtest", {"version": "1", "months": "6"}),
    # issue 13 item 5: bulk import (the upload, the confirmation)
    "/admin/import": lambda i: ("/admin/import", {"kind": "members"}),
    "/admin/import/start": lambda i: (
        "/admin/import/start",
        {"kind": "members", "checksum": "0" * 64, "suffix": ".csv", "filename": "x.csv"},
    ),
}


def _post_routes() -> set[str]:
    return {
        r.path  # type: ignore[attr-defined]
        for r in router.routes
        if "POST" in getattr(r, "methods", set())
    }


def test_every_post_route_is_covered() -> None:
    assert _post_routes() == set(FORMS) | {"/admin/login"}


def _state(db: Database) -> tuple[dict[str, int], list[Any], list[Any]]:
    with db.transaction() as s:
        users = [
            (u.id, u.locale, u.password_hash)
            for u in s.scalars(select(StaffUser).order_by(StaffUser.id))
        ]
        sessions = [
            (x.id, x.revoked_at) for x in s.scalars(select(StaffSession).order_by(StaffSession.id))
        ]
    return counts(db), users, sessions


@pytest.mark.parametrize("path", sorted(FORMS))
def test_a_form_without_the_right_csrf_token_is_refused_and_writes_nothing(
    world: Any, ids: dict[str, int], path: str
) -> None:
    db = world.db
    with console_client(db) as other:
        other_token = login(other, db, "admin2")  # a valid token, of another session
    with console_client(db) as c:
        token = login(c, db, "admin")
        url, form = FORMS[path](ids)
        before = _state(db)
        for bad in (None, "", "not-the-token", token[:-2] + "xx", other_token):
            data = dict(form) if bad is None else {**form, "csrf_token": bad}
            r = c.post(url, data=data, follow_redirects=False)
            assert r.status_code == 403, (path, bad, r.status_code)
            r = c.post(url, data=form, headers={CSRF_HEADER: bad or ""}, follow_redirects=False)
            assert r.status_code == 403, (path, "header", bad, r.status_code)
        assert _state(db) == before, path
        # The right token (form field, or the header HTMX sends) is accepted.
        r = c.post(url, data=form, headers={CSRF_HEADER: token}, follow_redirects=False)
        assert r.status_code != 403, (path, r.status_code, r.text[:300])


def test_the_login_form_needs_its_double_submit_token(world: Any, ids: dict[str, int]) -> None:
    db = world.db
    with console_client(db) as c:
        creds = {"login": "admin", "password": PASSWORD}
        before = counts(db, ["staff_session"])
        assert c.post("/admin/login", data=creds, follow_redirects=False).status_code == 403
        c.cookies.set(LOGIN_CSRF_COOKIE, "cookie-token")
        for bad in ("", "other-token"):
            r = c.post("/admin/login", data={**creds, "csrf_token": bad}, follow_redirects=False)
            assert r.status_code == 403
        assert counts(db, ["staff_session"]) == before
        # The login page hands out the token, in a cookie and in the form.
        c.cookies.clear()
        page = c.get("/admin/login")
        token = c.cookies.get(LOGIN_CSRF_COOKIE)
        assert token and f'value="{token}"' in page.text
        r = c.post("/admin/login", data={**creds, "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303


def _set_cookie(resp: Any, name: str) -> str:
    for value in resp.headers.get_list("set-cookie"):
        if value.startswith(f"{name}="):
            return str(value)
    raise AssertionError(f"no Set-Cookie for {name}: {resp.headers.get_list('set-cookie')}")


def _attrs(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")[1:]]
    return {p.split("=")[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


def _login_response(c: TestClient, headers: dict[str, str] | None = None) -> Any:
    page = c.get("/admin/login", headers=headers)
    login_cookie = _attrs(_set_cookie(page, LOGIN_CSRF_COOKIE))
    token = c.cookies.get(LOGIN_CSRF_COOKIE)
    assert token
    # Behind a TLS proxy the browser speaks https: it sends the Secure cookie back.
    c.cookies.delete(LOGIN_CSRF_COOKIE)
    c.cookies.set(LOGIN_CSRF_COOKIE, token)
    r = c.post(
        "/admin/login",
        data={"login": "admin", "password": PASSWORD, "csrf_token": token},
        headers=headers,
        follow_redirects=False,
    )
    assert r.status_code == 303
    return r, login_cookie


@pytest.mark.parametrize(
    ("https", "headers"),
    [(False, None), (True, None), (False, {"x-forwarded-proto": "https"})],
    ids=["http", "https", "behind-a-tls-proxy"],
)
def test_session_cookie_flags(
    world: Any, ids: dict[str, int], https: bool, headers: dict[str, str] | None
) -> None:
    secure = https or headers is not None
    with console_client(world.db, https=https) as c:
        r, login_cookie = _login_response(c, headers)
        attrs = _attrs(_set_cookie(r, COOKIE))
    for a in (attrs, login_cookie):
        assert "httponly" in a
        assert a.get("samesite", "").lower() in ("lax", "strict")
        assert a.get("path") == "/"
        assert ("secure" in a) == secure
    # The session cookie lives as long as the browser session; the server ends it earlier.
    assert "max-age" not in attrs and "expires" not in attrs
    # Only a hash of the cookie's token is stored.
    token = r.cookies.get(COOKIE)
    with world.db.transaction() as s:
        stored = [x.token_hash for x in s.scalars(select(StaffSession))]
    assert token and token not in stored and len(stored) == 1


def _form_login(c: TestClient, password: str, login_name: str = "admin") -> Any:
    c.cookies.set(LOGIN_CSRF_COOKIE, "lockout-token")
    return c.post(
        "/admin/login",
        data={"login": login_name, "password": password, "csrf_token": "lockout-token"},
        follow_redirects=False,
    )


def test_login_lockout_and_unlock(world: Any, ids: dict[str, int], clock: Any) -> None:
    with console_client(world.db) as c:
        unknown = _form_login(c, PASSWORD, "nobody")
        assert unknown.status_code == 401
        for _ in range(staff.MAX_FAILURES - 1):
            r = _form_login(c, "wrong-password")
            assert r.status_code == 401
            assert r.text.count("csrf_token") >= 1  # the form again, with an error
        locked = _form_login(c, "wrong-password")
        assert locked.status_code == 429
        # The message for an unknown login is the message for a wrong password.
        msg = re.compile(r'role="alert">([^<]+)<')
        assert msg.findall(unknown.text) == msg.findall(r.text) != []
        assert msg.findall(locked.text) != msg.findall(r.text)
        before = counts(world.db, ["staff_session"])
        assert _form_login(c, PASSWORD).status_code == 429  # even the right password
        assert counts(world.db, ["staff_session"]) == before
        clock.advance(staff.LOCKOUT)
        assert _form_login(c, PASSWORD).status_code == 303


def test_logout_ends_the_session_everywhere_it_is_replayed(world: Any, ids: dict[str, int]) -> None:
    with console_client(world.db) as c:
        token = login(c, world.db, "admin")
        cookie = c.cookies.get(COOKIE)
        assert c.get("/admin/members", follow_redirects=False).status_code == 200
        r = c.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/admin/login")
        cleared = _attrs(_set_cookie(r, COOKIE))
        assert cleared.get("max-age") == "0" or "expires" in cleared
    with console_client(world.db) as replay:  # the old cookie, presented again
        replay.cookies.set(COOKIE, cookie or "")
        r = replay.get("/admin/members", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
        r = replay.post(f"/admin/members/{ids['member']}/tags", data={"add": "x"})
        assert r.status_code == 401


def test_an_idle_session_expires(world: Any, ids: dict[str, int], clock: Any) -> None:
    with console_client(world.db) as c:
        login(c, world.db, "admin")
        clock.advance(staff.SESSION_IDLE - timedelta(minutes=1))
        assert c.get("/admin/members", follow_redirects=False).status_code == 200
        clock.advance(staff.SESSION_IDLE + timedelta(minutes=1))
        r = c.get("/admin/members", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")


def test_a_password_change_signs_out_the_other_sessions(world: Any, ids: dict[str, int]) -> None:
    with console_client(world.db) as other:
        login(other, world.db, "admin")
        with console_client(world.db) as c:
            token = login(c, world.db, "admin")
            r = c.post(
                "/admin/password",
                data={
                    "csrf_token": token,
                    "current": PASSWORD,
                    "new": "brand-new-pass",
                    "confirm": "brand-new-pass",
                },
            )
            assert r.status_code == 200
            assert c.get("/admin/members", follow_redirects=False).status_code == 200
        r = other.get("/admin/members", follow_redirects=False)
        assert r.status_code == 303


def test_no_phone_number_or_password_reaches_the_logs(
    world: Any, ids: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    # Every logger of the application at its most verbose (production runs at info); the
    # test client's own request log (httpx) and SQL echo stay off, as in production.
    for name in ("loyalist", "uvicorn", "uvicorn.access", "uvicorn.error"):
        caplog.set_level(logging.DEBUG, logger=name)
    logging.getLogger("loyalist.test").debug("capture is on")
    new_phone = "13987654321"
    with console_client(world.db) as c:
        _form_login(c, "wrong-password-xyz", login_name=PHONE)  # a phone typed as a login
        token = login(c, world.db, "admin")
        for url in (
            f"/admin/members?phone={PHONE}",
            f"/admin/members?q={PHONE}",
            f"/admin/members/{ids['member']}",
            "/admin/members?phone=12345",  # invalid: the form shows a field error
        ):
            c.get(url)
        c.post(
            f"/admin/members/{ids['member']}/edit",
            data={"csrf_token": token, "phone": new_phone},
        )
        c.post(  # a conflict: the phone belongs to nobody else, then to someone else
            f"/admin/members/{ids['member']}/edit",
            data={"csrf_token": token, "phone": "1391234"},
        )
    with api_client(world.db, world.keys["hq"]) as api:
        api.post("/v1/members", json={"phone": "13511112222", "name": "孙八"})
        api.post("/v1/members", json={"phone": "13511112222", "external_id": "dup"})
        api.post("/v1/members", json={"phone": "999"})
        api.get("/v1/members?phone=13511112222")
    assert "capture is on" in caplog.text
    text = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if r.name.startswith(("loyalist", "uvicorn"))
    )
    for secret in (PHONE, new_phone, "13511112222", "wrong-password-xyz", PASSWORD):
        assert secret not in text, secret
        assert secret[-8:] not in text, secret
