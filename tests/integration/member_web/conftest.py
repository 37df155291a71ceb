"""Fixtures for the member page: an app with the development inbox, members, sign-in."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Message

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TOKEN = re.compile(r'name="token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m is not None, "no CSRF field on the page"
    return m.group(1)


def token_of(html: str) -> str:
    m = TOKEN.search(html)
    assert m is not None, "no idempotency token on the page"
    return m.group(1)


@dataclass
class Person:
    id: int
    phone: str  # as typed: 13812345678
    e164: str


def make_member(db: Database, phone: str, *, points: int = 0, name: str = "测试会员") -> Person:
    with db.transaction() as s:
        m = members.create(s, SYSTEM, MemberCreate(phone=phone, name=name, home_store="sh1")).member
        if points:
            members.adjust_points(s, SYSTEM, m.id, points, "welcome gift")
        return Person(m.id, phone, m.phone or "")


def last_code(db: Database, e164: str) -> str:
    with db.transaction() as s:
        msg = s.scalars(
            select(Message).where(Message.recipient == e164).order_by(Message.id.desc())
        ).first()
    assert msg is not None, "no message in the dev inbox"
    code = msg.params["code"]
    assert isinstance(code, str)
    return code


def message_count(db: Database) -> int:
    with db.transaction() as s:
        return len(list(s.scalars(select(Message.id))))


@pytest.fixture
def app_client(world: Any) -> Iterator[Callable[..., TestClient]]:
    """Factory of clients (each with its own cookie jar) on one app with the dev inbox on."""
    app = create_app(Settings(database_url=world.db.url, dev_inbox=True), db=world.db)
    clients: list[TestClient] = []

    def make(base_url: str = "http://testserver") -> TestClient:
        c = TestClient(app, base_url=base_url, raise_server_exceptions=True, follow_redirects=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def request_code(client: TestClient, phone: str) -> Any:
    page = client.get("/m/signin")
    assert page.status_code == 200
    return client.post("/m/signin", data={"csrf": csrf_of(page.text), "phone": phone})


def sign_in(client: TestClient, db: Database, person: Person) -> None:
    sent = request_code(client, person.phone)
    assert sent.status_code == 200, sent.text
    done = client.post(
        "/m/signin/code",
        data={"csrf": csrf_of(sent.text), "phone": person.e164, "code": last_code(db, person.e164)},
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/m"
