"""Staff users and sessions on a real database: argon2 hashes, lockout, sessions, passwords."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from tests.itest import counts

from loyalist.access.permissions import ROLES
from loyalist.errors import LoyalistError
from loyalist.kit.clock import utcnow
from loyalist.kit.hashing import sha256_hex
from loyalist.models import OrgUnit, StaffSession, StaffUser
from loyalist.staff import service as staff
from loyalist.staff.errors import StaffUserExists, WrongPassword

PASSWORD = "correct horse 1"


def _user(world: Any, login: str = "alice", role: str = "hq_admin", unit: str = "hq") -> int:
    with world.db.transaction() as s:
        return staff.create_user(s, login=login, role=role, unit_code=unit, password=PASSWORD).id


def _login(world: Any, login: str, password: str) -> staff.LoginResult:
    result: staff.LoginResult = world.db.run(lambda s: staff.login(s, login, password))
    return result


def _auth(world: Any, token: str) -> staff.Current | None:
    current: staff.Current | None = world.db.run(lambda s: staff.authenticate(s, token))
    return current


def _row(world: Any, user_id: int) -> StaffUser:
    with world.db.transaction() as s:
        user = s.get(StaffUser, user_id)
        assert user is not None
        s.expunge(user)
        return user


# ── users and hashes ───────────────────────────────────────────────────────────────────
def test_password_is_stored_as_an_argon2id_hash(world: Any) -> None:
    uid = _user(world, login=" Alice ")
    user = _row(world, uid)
    assert user.login == "alice"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert PasswordHasher().verify(user.password_hash, PASSWORD) is True
    assert (user.failed_logins, user.locked_until, user.disabled_at) == (0, None, None)


def test_the_unknown_login_dummy_hash_costs_what_a_new_hash_costs() -> None:
    """Written out instead of hashed at import (issue 11); it must keep the parameters the
    hasher gives new hashes, so an unknown login takes as long as a wrong password."""
    assert staff._DUMMY_HASH.startswith("$argon2id$")
    assert PasswordHasher().check_needs_rehash(staff._DUMMY_HASH) is False
    assert staff._verify(staff._DUMMY_HASH, "loyalist-dummy-password") is True
    assert staff._verify(staff._DUMMY_HASH, PASSWORD) is False


def test_same_password_gets_a_different_salt(world: Any) -> None:
    a, b = _user(world, login="a"), _user(world, login="b")
    assert _row(world, a).password_hash != _row(world, b).password_hash


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"password": "short7!"}, 422, "password"),
        ({"role": "superuser"}, 422, "role"),
        ({"login": "  "}, 422, "login"),
        ({"unit_code": "nowhere"}, 404, None),
    ],
)
def test_invalid_user_is_refused_and_nothing_is_written(
    world: Any, fields: dict[str, str], status: int, field: str | None
) -> None:
    before = counts(world.db)
    args = {"login": "bob", "role": "analyst", "unit_code": "hq", "password": PASSWORD, **fields}
    with pytest.raises(LoyalistError) as exc, world.db.transaction() as s:
        staff.create_user(s, **args)
    assert exc.value.status == status
    if field is not None:
        assert [e.field for e in exc.value.errors] == [field]
    assert counts(world.db) == before


def test_duplicate_login_is_a_conflict(world: Any) -> None:
    _user(world, login="alice")
    with pytest.raises(StaffUserExists), world.db.transaction() as s:
        staff.create_user(s, login="ALICE", role="analyst", unit_code="hq", password=PASSWORD)


@pytest.mark.parametrize(
    ("role", "unit"),
    [(r, u) for r, u in zip(ROLES, ["hq", "east", "sh1", "hq", "hq"], strict=True)],
)
def test_actor_carries_the_role_permissions_and_the_unit_scope(
    world: Any, role: str, unit: str
) -> None:
    uid = _user(world, login=f"u-{role}", role=role, unit=unit)
    with world.db.transaction() as s:
        user = s.get(StaffUser, uid)
        assert user is not None
        actor = staff.actor_for(s, user)
        path = s.scalar(select(OrgUnit.path).where(OrgUnit.code == unit))
    assert actor.name == f"user:u-{role}"
    assert actor.principal == f"user:{uid}"
    assert actor.scope_path == path
    assert actor.permissions == ROLES[role]


# ── login, lockout ─────────────────────────────────────────────────────────────────────
def test_login_opens_a_session_storing_only_the_token_hash(world: Any, clock: Any) -> None:
    uid = _user(world)
    result = _login(world, "ALICE", PASSWORD)
    assert result.ok and not result.locked
    assert result.token and result.csrf_token and result.token != result.csrf_token
    with world.db.transaction() as s:
        rows = list(s.scalars(select(StaffSession)))
        user = s.get(StaffUser, uid)
        assert user is not None
        assert user.last_login_at == utcnow()
    assert len(rows) == 1
    assert rows[0].token_hash == sha256_hex(result.token)
    assert rows[0].csrf_token == result.csrf_token
    assert rows[0].staff_user_id == uid
    assert rows[0].expires_at == utcnow() + staff.SESSION_IDLE
    current = _auth(world, result.token)
    assert current is not None and current.user.id == uid
    assert staff.csrf_ok(current, result.csrf_token)
    assert not staff.csrf_ok(current, "")
    assert not staff.csrf_ok(current, None)
    assert not staff.csrf_ok(current, result.csrf_token[:-1] + "x")


def test_unknown_login_and_wrong_password_fail_alike_and_open_no_session(world: Any) -> None:
    _user(world)
    for login, password in [("nobody", PASSWORD), ("alice", "wrong password")]:
        assert _login(world, login, password) == staff.LoginResult(ok=False)
    assert counts(world.db, ["staff_session"]) == {"staff_session": 0}


def test_lockout_after_max_failures_then_unlock_after_the_period(world: Any, clock: Any) -> None:
    uid = _user(world)
    for i in range(1, staff.MAX_FAILURES):
        assert _login(world, "alice", f"wrong {i}") == staff.LoginResult(ok=False)
        assert _row(world, uid).failed_logins == i
    # The MAX_FAILURES-th failure locks the account (committed, not rolled back).
    assert _login(world, "alice", "wrong again") == staff.LoginResult(ok=False, locked=True)
    assert _row(world, uid).locked_until == utcnow() + staff.LOCKOUT
    # Locked: even the right password is refused, and no session opens.
    clock.advance(staff.LOCKOUT - timedelta(seconds=1))
    assert _login(world, "alice", PASSWORD) == staff.LoginResult(ok=False, locked=True)
    assert counts(world.db, ["staff_session"]) == {"staff_session": 0}
    # After the period the right password works and the counters are clear.
    clock.advance(timedelta(seconds=1))
    ok = _login(world, "alice", PASSWORD)
    assert ok.ok and ok.token
    user = _row(world, uid)
    assert (user.failed_logins, user.locked_until) == (0, None)


def test_failures_after_an_expired_lock_count_from_one(world: Any, clock: Any) -> None:
    uid = _user(world)
    for _ in range(staff.MAX_FAILURES):
        _login(world, "alice", "wrong")
    clock.advance(staff.LOCKOUT)
    assert _login(world, "alice", "wrong") == staff.LoginResult(ok=False)
    user = _row(world, uid)
    assert (user.failed_logins, user.locked_until) == (1, None)


def test_a_success_resets_the_failure_count(world: Any) -> None:
    uid = _user(world)
    for _ in range(staff.MAX_FAILURES - 1):
        _login(world, "alice", "wrong")
    assert _login(world, "alice", PASSWORD).ok
    assert _row(world, uid).failed_logins == 0
    for _ in range(staff.MAX_FAILURES - 1):
        assert not _login(world, "alice", "wrong").locked
    assert _login(world, "alice", PASSWORD).ok


def test_disabled_user_cannot_log_in_and_its_sessions_stop(world: Any) -> None:
    uid = _user(world)
    token = _login(world, "alice", PASSWORD).token
    assert token is not None
    with world.db.transaction() as s:
        user = s.get(StaffUser, uid)
        assert user is not None
        user.disabled_at = utcnow()
    assert _login(world, "alice", PASSWORD) == staff.LoginResult(ok=False)
    assert _auth(world, token) is None


# ── sessions ───────────────────────────────────────────────────────────────────────────
def test_session_expires_after_the_idle_period(world: Any, clock: Any) -> None:
    _user(world)
    token = _login(world, "alice", PASSWORD).token
    assert token is not None
    clock.advance(staff.SESSION_IDLE - timedelta(seconds=1))
    assert _auth(world, token) is not None  # activity slides the expiry
    clock.advance(staff.SESSION_IDLE - timedelta(seconds=1))
    assert _auth(world, token) is not None
    clock.advance(staff.SESSION_IDLE)
    assert _auth(world, token) is None


def test_unknown_or_empty_token_is_no_session(world: Any) -> None:
    _user(world)
    assert _auth(world, "") is None
    assert _auth(world, "not-a-token") is None


def test_logout_invalidates_only_that_session(world: Any) -> None:
    _user(world)
    one, two = _login(world, "alice", PASSWORD).token, _login(world, "alice", PASSWORD).token
    assert one and two
    world.db.run(lambda s: staff.logout(s, one))
    assert _auth(world, one) is None
    assert _auth(world, two) is not None
    world.db.run(lambda s: staff.logout(s, one))  # a second logout is harmless
    assert _auth(world, one) is None


# ── password change ────────────────────────────────────────────────────────────────────
def test_change_password_closes_the_other_sessions(world: Any) -> None:
    uid = _user(world)
    keep, other = _login(world, "alice", PASSWORD).token, _login(world, "alice", PASSWORD).token
    assert keep and other
    current = _auth(world, keep)
    assert current is not None
    sid = current.session.id
    world.db.run(lambda s: staff.change_password(s, uid, PASSWORD, "a new secret!", keep=sid))
    assert _auth(world, keep) is not None
    assert _auth(world, other) is None
    assert not _login(world, "alice", PASSWORD).ok
    assert _login(world, "alice", "a new secret!").ok
    user = _row(world, uid)
    assert PasswordHasher().verify(user.password_hash, "a new secret!")
    assert user.password_changed_at == utcnow()


@pytest.mark.parametrize(
    ("current", "new", "field"),
    [("wrong one!", "a new secret!", "current"), (PASSWORD, "short", "new")],
)
def test_change_password_refused_leaves_everything_as_it_was(
    world: Any, current: str, new: str, field: str
) -> None:
    uid = _user(world)
    other = _login(world, "alice", PASSWORD).token
    assert other
    before = _row(world, uid).password_hash
    with pytest.raises(LoyalistError) as exc:
        world.db.run(lambda s: staff.change_password(s, uid, current, new, keep=0))
    assert exc.value.status == 422
    assert [e.field for e in exc.value.errors] == [field]
    if field == "current":
        assert isinstance(exc.value, WrongPassword)
    assert _row(world, uid).password_hash == before
    assert _auth(world, other) is not None
    assert _login(world, "alice", PASSWORD).ok


def test_demo_users_one_per_role(world: Any) -> None:
    made = world.db.run(staff.ensure_demo_users)
    assert sorted(r for _l, _p, r, _u in made) == sorted(ROLES)
    for login, password, role, _unit in made:
        assert _login(world, login, password).ok, (login, role)
    again = world.db.run(staff.ensure_demo_users)
    assert again == made
    assert counts(world.db, ["staff_user"]) == {"staff_user": len(ROLES)}
