"""Joins of different members do not queue behind each other (PostgreSQL); SQLite runs one
writer at a time by design."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import text
from tests.conftest import BACKEND

from loyalist.kit.actor import SYSTEM
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate


def test_a_join_does_not_wait_for_another_members_uncommitted_join(world: Any) -> None:
    db = world.db
    first_open = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with db.transaction() as s:
                members.create(s, SYSTEM, MemberCreate(phone="13800000001"))
                s.flush()
                first_open.set()
                assert release.wait(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    assert first_open.wait(timeout=30)
    try:
        if BACKEND == "postgres":
            # Any wait on a lock held by the first join fails at once instead of queueing.
            with db.transaction() as s:
                s.execute(text("SET LOCAL lock_timeout = '300ms'"))
                second = members.create(s, SYSTEM, MemberCreate(phone="13800000002"))
                assert second.created
            assert not release.is_set()  # done while the first join is still open
        else:
            second_done = threading.Event()

            def join_second() -> None:
                with db.transaction() as s:
                    members.create(s, SYSTEM, MemberCreate(phone="13800000002"))
                second_done.set()

            t2 = threading.Thread(target=join_second)
            t2.start()
            assert not second_done.wait(timeout=0.3)  # one writer at a time
            release.set()
            t2.join(timeout=30)
            assert second_done.is_set()
    finally:
        release.set()
        t.join(timeout=30)
    assert errors == []
    with db.transaction() as s:
        nos = sorted(s.scalars(text("SELECT member_no FROM member")).all())
    assert nos == ["M000000001", "M000000002"]
