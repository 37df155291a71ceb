"""Helpers for tests that drive the staff console over HTTP with a real login."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from loyalist.admin.web import COOKIE, LOGIN_CSRF_COOKIE
from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.kit.db import Database
from loyalist.kit.hashing import sha256_hex
from loyalist.models import StaffSession
from loyalist.staff import service as staff

PASSWORD = "console-pass-2026"

# One user per role: login → (role, unit code). Units come from tests.support.build_world.
USERS: dict[str, tuple[str, str]] = {
    "admin": ("hq_admin", "hq"),
    "admin2": ("hq_admin", "hq"),
    "east.manager": ("regional_manager", "east"),
    "south.manager": ("regional_manager", "south"),
    "sh1.staff": ("store_staff", "sh1"),
    "sz1.staff": ("store_staff", "sz1"),
    "agent": ("service_agent", "hq"),
    "east.agent": ("service_agent", "east"),
    "analyst": ("analyst", "hq"),
    "east.analyst": ("analyst", "east"),
}


# Fixtures hash with cheap argon2id parameters (the real ones cost ~0.1–0.5 s a hash); a
# login upgrades the hash to the real parameters, as it would after a parameter change.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_users(db: Database, users: dict[str, tuple[str, str]] = USERS) -> None:
    with mock.patch.object(staff, "_hasher", CHEAP_HASHER), db.transaction() as s:
        for login, (role, unit) in users.items():
            staff.create_user(s, login=login, role=role, unit_code=unit, password=PASSWORD)


@contextmanager
def console_client(db: Database, *, https: bool = False) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db.url), db=db)
    base = "https://testserver" if https else "http://testserver"
    with TestClient(app, base_url=base, raise_server_exceptions=False) as c:
        yield c


def login(client: TestClient, db: Database, login_name: str, password: str = PASSWORD) -> str:
    """Sign in through POST /admin/login; returns the session's CSRF token."""
    token = "login-form-token-0123456789"
    client.cookies.set(LOGIN_CSRF_COOKIE, token)
    r = client.post(
        "/admin/login",
        data={"login": login_name, "password": password, "csrf_token": token, "next": "/admin"},
        follow_redirects=False,
    )
    assert r.status_code == 303, (r.status_code, r.text[:500])
    cookie = r.cookies.get(COOKIE)
    assert cookie, r.headers
    return session_csrf(db, cookie)


def session_csrf(db: Database, cookie: str) -> str:
    with db.transaction() as s:
        csrf = s.scalar(
            select(StaffSession.csrf_token).where(StaffSession.token_hash == sha256_hex(cookie))
        )
    assert csrf is not None
    return str(csrf)


def post(client: TestClient, url: str, csrf: str, data: dict[str, Any] | None = None) -> Any:
    """A console form post with the session's CSRF token, redirects not followed."""
    return client.post(url, data={**(data or {}), "csrf_token": csrf}, follow_redirects=False)
