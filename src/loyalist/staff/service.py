"""Console users: argon2 passwords, lockout, server-side sessions with a CSRF token, roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalist.access.permissions import ROLES, STAFF_MANAGE, require, role_can_write
from loyalist.audit import service as audit
from loyalist.errors import FieldError, ValidationFailed
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.hashing import constant_time_equals, new_token, sha256_hex
from loyalist.models import OrgUnit, StaffSession, StaffUser
from loyalist.org import service as org
from loyalist.org.errors import OrgUnitNotFound
from loyalist.staff.errors import StaffUserExists, StaffUserNotFound, WrongPassword

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
SESSION_IDLE = timedelta(hours=12)
MIN_PASSWORD = 8
ROLE_NAMES = tuple(ROLES)
_hasher = PasswordHasher()
# Verified against when the login is unknown, so both cases cost the same time: a hash of
# a throw-away password made once with the hasher's own parameters (m=64 MiB, t=3, p=4;
# a test holds them equal), written here rather than hashed at import, which cost every
# process that imports this module ~0.4 s of CPU and 64 MiB of transient memory (issue 11).
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$xpFMG2oRYXTBrSp+2Yzpig$"
    "tC2PCSOPlGRyzmc+9/s9Pf9W9mWZyGaycki6EvuLRrE"
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(hash_: str, password: str) -> bool:
    try:
        return _hasher.verify(hash_, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_password(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"A password needs at least {MIN_PASSWORD} characters.",
            [FieldError(field, f"at least {MIN_PASSWORD} characters", "too_short")],
        )


def create_user(
    session: Session,
    *,
    login: str,
    role: str,
    unit_code: str,
    password: str,
    display_name: str | None = None,
    locale: str | None = None,
    actor: Actor = SYSTEM,
) -> StaffUser:
    """A console user; ``actor`` (default: the system, e.g. ``loyalist user create``) must
    hold ``staff.manage`` and see the unit the user is bound to."""
    require(actor, STAFF_MANAGE)
    login = login.strip().lower()
    if not login or len(login) > 64:
        raise ValidationFailed("A login is required.", [FieldError("login", "1–64 characters")])
    if role not in ROLES:
        raise ValidationFailed(
            f"Unknown role {role!r}.", [FieldError("role", f"one of {', '.join(ROLES)}")]
        )
    _check_password(password)
    if session.scalar(select(StaffUser.id).where(StaffUser.login == login)) is not None:
        raise StaffUserExists(f"A staff user {login!r} exists.")
    unit = org.get_by_code(session, unit_code)
    if not actor.sees(unit.path):
        raise OrgUnitNotFound(f"No organisation unit {unit_code!r}.")
    if unit.closed_at is not None:
        raise ValidationFailed("The store is closed.", [FieldError("unit", "closed", "closed")])
    now = utcnow()
    user = StaffUser(
        login=login,
        display_name=display_name,
        password_hash=hash_password(password),
        role=role,
        org_unit_id=unit.id,
        locale=locale,
        failed_logins=0,
        locked_until=None,
        disabled_at=None,
        password_changed_at=now,
        last_login_at=None,
        created_at=now,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        "staff.create",
        "staff_user",
        user.id,
        org_path=unit.path,
        after={"login": login, "role": role, "unit": unit.code},
    )
    return user


def get_by_login(session: Session, login: str) -> StaffUser:
    user = session.scalar(select(StaffUser).where(StaffUser.login == login.strip().lower()))
    if user is None:
        raise StaffUserNotFound(f"No staff user {login!r}.")
    return user


def list_users(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.login)))


def actor_for(session: Session, user: StaffUser) -> Actor:
    unit = session.get(OrgUnit, user.org_unit_id)
    assert unit is not None
    return Actor(
        name=f"user:{user.login}",
        scope_path=unit.path,
        can_write=role_can_write(user.role),
        principal=f"user:{user.id}",
        permissions=ROLES[user.role],
        role=user.role,
    )


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    token: str | None = None
    csrf_token: str | None = None
    locked: bool = False


def login(session: Session, login_name: str, password: str) -> LoginResult:
    """Check a password; a success opens a session. Failures are counted (and committed):
    after MAX_FAILURES in a row the account is locked for LOCKOUT, whatever is presented."""
    now = utcnow()
    user = session.scalar(
        select(StaffUser).where(StaffUser.login == login_name.strip().lower()).with_for_update()
    )
    if user is None or user.disabled_at is not None:
        _verify(_DUMMY_HASH, password)
        return LoginResult(ok=False)
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult(ok=False, locked=True)
    if not _verify(user.password_hash, password):
        user.failed_logins = (
            1
            if user.locked_until is not None and user.locked_until <= now
            else user.failed_logins + 1
        )
        if user.locked_until is not None and user.locked_until <= now:
            user.locked_until = None
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            session.flush()
            return LoginResult(ok=False, locked=True)
        session.flush()
        return LoginResult(ok=False)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token, csrf = new_token(32), new_token(32)
    session.add(
        StaffSession(
            token_hash=sha256_hex(token),
            csrf_token=csrf,
            staff_user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_IDLE,
            revoked_at=None,
        )
    )
    session.flush()
    return LoginResult(ok=True, token=token, csrf_token=csrf)


@dataclass(frozen=True)
class Current:
    user: StaffUser
    session: StaffSession
    actor: Actor


def authenticate(session: Session, token: str) -> Current | None:
    """The open session behind a cookie token (sliding idle expiry), or None."""
    if not token:
        return None
    now = utcnow()
    row = session.scalar(select(StaffSession).where(StaffSession.token_hash == sha256_hex(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    user = session.get(StaffUser, row.staff_user_id)
    if user is None or user.disabled_at is not None:
        return None
    if now - row.last_seen_at > timedelta(minutes=1):
        row.last_seen_at = now
        row.expires_at = now + SESSION_IDLE
    return Current(user, row, actor_for(session, user))


def csrf_ok(current: Current, presented: str | None) -> bool:
    return bool(presented) and constant_time_equals(current.session.csrf_token, presented or "")


def logout(session: Session, token: str) -> None:
    session.execute(
        update(StaffSession)
        .where(StaffSession.token_hash == sha256_hex(token), StaffSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def change_password(session: Session, user_id: int, current: str, new: str, keep: int) -> None:
    """Change a password; every other session of the user is closed (``keep`` stays open)."""
    user = session.get(StaffUser, user_id)
    if user is None:
        raise StaffUserNotFound("No such staff user.")
    if not _verify(user.password_hash, current):
        raise WrongPassword(
            "The current password is wrong.", [FieldError("current", "wrong password", "wrong")]
        )
    _check_password(new, "new")
    now = utcnow()
    user.password_hash = hash_password(new)
    user.password_changed_at = now
    closed = session.execute(
        update(StaffSession)
        .where(
            StaffSession.staff_user_id == user.id,
            StaffSession.id != keep,
            StaffSession.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    unit = session.get(OrgUnit, user.org_unit_id)
    audit.record(
        session,
        actor_for(session, user),
        "staff.password",
        "staff_user",
        user.id,
        org_path=unit.path if unit is not None else "/",
        after={"sessions_closed": int(closed.rowcount)},  # type: ignore[attr-defined]
    )


def set_locale(session: Session, user_id: int, locale: str | None) -> None:
    user = session.get(StaffUser, user_id)
    if user is not None:
        user.locale = locale


DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("admin", "hq_admin", "hq"),
    ("east.manager", "regional_manager", "east"),
    ("jingan.staff", "store_staff", "sh-jingan"),
    ("agent", "service_agent", "hq"),
    ("analyst", "analyst", "hq"),
)


def ensure_demo_users(session: Session) -> list[tuple[str, str, str, str]]:
    """One user per role for the demo: (login, password, role, unit code).

    Units are the demo's codes when they exist (hq, a region, a store); otherwise the first
    region and store of the tree. Existing users are left as they are (password unchanged).
    """
    units = list(session.scalars(select(OrgUnit).order_by(OrgUnit.path)))
    by_code = {u.code: u for u in units}
    out: list[tuple[str, str, str, str]] = []
    for login_name, role, code in DEMO_USERS:
        kind = {"regional_manager": "region", "store_staff": "store"}.get(role, "hq")
        unit = by_code.get(code) or next((u for u in units if u.kind == kind), None)
        if unit is None:
            continue
        password = f"{login_name.split('.')[0]}-demo-2026"
        if session.scalar(select(StaffUser.id).where(StaffUser.login == login_name)) is None:
            create_user(
                session, login=login_name, role=role, unit_code=unit.code, password=password
            )
        out.append((login_name, password, role, unit.code))
    return out


# ── administration (console: staff.manage) ─────────────────────────────────────────────
def _managed(session: Session, actor: Actor, user_id: int) -> StaffUser:
    """A user ``actor`` may manage: holds staff.manage and sees the user's unit (else 404,
    as if absent). Nobody manages their own account here (password page instead)."""
    require(actor, STAFF_MANAGE)
    user = session.get(StaffUser, user_id, with_for_update=True)
    unit = session.get(OrgUnit, user.org_unit_id) if user is not None else None
    if user is None or unit is None or not actor.sees(unit.path):
        raise StaffUserNotFound(f"No staff user {user_id}.")
    if actor.principal == f"user:{user.id}":
        raise ValidationFailed(
            "You cannot change your own account here.",
            [FieldError("user", "your own account", "own_account")],
        )
    return user


def _close_sessions(session: Session, user_id: int) -> int:
    closed = session.execute(
        update(StaffSession)
        .where(StaffSession.staff_user_id == user_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(closed.rowcount)  # type: ignore[attr-defined]


def _unit_path(session: Session, user: StaffUser) -> str:
    unit = session.get(OrgUnit, user.org_unit_id)
    return unit.path if unit is not None else "/"


def list_managed(session: Session, actor: Actor) -> list[tuple[StaffUser, OrgUnit]]:
    """Users whose unit ``actor`` sees, by login."""
    require(actor, STAFF_MANAGE)
    rows = session.execute(
        select(StaffUser, OrgUnit)
        .join(OrgUnit, OrgUnit.id == StaffUser.org_unit_id)
        .order_by(StaffUser.login)
    )
    return [(u, o) for u, o in rows if actor.sees(o.path)]


def disable(session: Session, actor: Actor, user_id: int) -> StaffUser:
    """Disable a user: they cannot sign in and every open session ends at once (the
    session check reads the user on each request)."""
    user = _managed(session, actor, user_id)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
    closed = _close_sessions(session, user.id)
    audit.record(
        session,
        actor,
        "staff.disable",
        "staff_user",
        user.id,
        org_path=_unit_path(session, user),
        before={"disabled": False},
        after={"disabled": True, "sessions_closed": closed},
    )
    return user


def enable(session: Session, actor: Actor, user_id: int) -> StaffUser:
    user = _managed(session, actor, user_id)
    user.disabled_at = None
    user.failed_logins = 0
    user.locked_until = None
    audit.record(
        session,
        actor,
        "staff.enable",
        "staff_user",
        user.id,
        org_path=_unit_path(session, user),
        before={"disabled": True},
        after={"disabled": False},
    )
    return user


def reset_password(session: Session, actor: Actor, user_id: int, password: str) -> StaffUser:
    """Set a new password chosen by an administrator; the user's sessions end and the
    lockout is lifted."""
    user = _managed(session, actor, user_id)
    _check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None
    closed = _close_sessions(session, user.id)
    audit.record(
        session,
        actor,
        "staff.password.reset",
        "staff_user",
        user.id,
        org_path=_unit_path(session, user),
        after={"sessions_closed": closed},
    )
    return user


def change_role(
    session: Session, actor: Actor, user_id: int, *, role: str, unit_code: str
) -> StaffUser:
    """A new role and scope, both within what ``actor`` sees; open sessions end so the
    user signs in again under the new rights."""
    user = _managed(session, actor, user_id)
    if role not in ROLES:
        raise ValidationFailed(
            f"Unknown role {role!r}.", [FieldError("role", f"one of {', '.join(ROLES)}")]
        )
    unit = org.get_by_code(session, unit_code) if unit_code else None
    if unit is None or not actor.sees(unit.path):
        raise ValidationFailed(
            f"No organisation unit {unit_code!r}.", [FieldError("unit", "unknown unit")]
        )
    if unit.closed_at is not None:
        raise ValidationFailed("The store is closed.", [FieldError("unit", "closed", "closed")])
    before_unit = session.get(OrgUnit, user.org_unit_id)
    before = {"role": user.role, "unit": before_unit.code if before_unit else None}
    user.role = role
    user.org_unit_id = unit.id
    closed = _close_sessions(session, user.id) if before != {"role": role, "unit": unit.code} else 0
    audit.record(
        session,
        actor,
        "staff.role",
        "staff_user",
        user.id,
        org_path=unit.path,
        before=before,
        after={"role": role, "unit": unit.code, "sessions_closed": closed},
    )
    return user
