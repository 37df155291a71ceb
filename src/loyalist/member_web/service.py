"""Sign-in with a one-time code, and member sessions.

Codes: 6 digits from ``secrets``, stored as a salted SHA-256 (never in clear), valid for
:data:`CODE_TTL`, single-use; :data:`MAX_ATTEMPTS` wrong guesses close the code, and a
new code closes the previous one. Every request leaves a row, also for numbers that are
not members (their code is never sent and never matches), so answers do not reveal who
is a member, and the rows count the sends per phone and per client address
(:data:`PHONE_LIMITS`, :data:`IP_LIMITS`). On PostgreSQL the count-then-insert is guarded
by transaction-level advisory locks on the phone and the address; SQLite serialises
writers with ``BEGIN IMMEDIATE``.

Sessions: the cookie carries a random token; we keep only its hash, the member id, the
session's CSRF token and an expiry. Nothing here takes a member id from the request:
the session decides whose page it is.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.db import is_sqlite
from loyalist.kit.hashing import constant_time_equals, new_token, sha256_hex
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Member, MemberLoginCode, MemberSession

CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
# (window, most codes in it)
PHONE_LIMITS: tuple[tuple[timedelta, int], ...] = (
    (timedelta(seconds=60), 1),
    (timedelta(hours=1), 5),
)
IP_LIMITS: tuple[tuple[timedelta, int], ...] = (
    (timedelta(minutes=1), 10),
    (timedelta(hours=1), 30),
)
SESSION_TTL = timedelta(days=30)


def phone_key(phone_e164: str) -> str:
    return sha256_hex("member-signin-phone:" + phone_e164)


def ip_key(ip: str) -> str:
    return sha256_hex("member-signin-ip:" + ip)


def _code_hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _advisory_lock(session: Session, key: str) -> None:
    if is_sqlite(session):
        return
    n = int(key[:15], 16)  # fits a signed 64-bit integer
    session.execute(text("SELECT pg_advisory_xact_lock(:n)"), {"n": n})


@dataclass(frozen=True)
class Issued:
    """A code was issued; ``member`` is None for a number that is not a member."""

    code: str
    member: Member | None
    expires_at: datetime


@dataclass(frozen=True)
class Limited:
    """Too many codes; try again after ``retry_after_s`` seconds."""

    retry_after_s: int


def _retry_after(
    session: Session,
    column: str,
    key: str,
    limits: tuple[tuple[timedelta, int], ...],
    now: datetime,
) -> int | None:
    """Seconds until one more code is allowed, or None when one is allowed now."""
    col = getattr(MemberLoginCode, column)
    for window, most in limits:
        times = list(
            session.scalars(
                select(MemberLoginCode.created_at)
                .where(col == key, MemberLoginCode.created_at > now - window)
                .order_by(MemberLoginCode.created_at.desc())
                .limit(most)
            )
        )
        if len(times) >= most:
            # The window frees up when the oldest of these leaves it.
            free_at = as_utc(times[-1]) + window
            return max(1, math.ceil((free_at - now).total_seconds()))
    return None


def request_code(
    session: Session, phone_e164: str, ip: str, *, for_join: bool = False
) -> Issued | Limited:
    """Issue a new code for ``phone_e164`` (normalised), unless a send limit is reached.
    ``for_join``: the code is real (and sent) for a number that is not a member yet, so
    that it can join; sign-in codes for non-members never match."""
    now = utcnow()
    pkey, ikey = phone_key(phone_e164), ip_key(ip)
    for key in sorted({pkey, ikey}):
        _advisory_lock(session, key)
    for column, key, limits in (
        ("phone_hash", pkey, PHONE_LIMITS),
        ("ip_hash", ikey, IP_LIMITS),
    ):
        wait = _retry_after(session, column, key, limits, now)
        if wait is not None:
            return Limited(wait)
    member = members.find_by_identity(session, "phone", phone_e164)
    if member is not None and member.status != "active":
        member = None
    session.execute(
        update(MemberLoginCode)
        .where(
            MemberLoginCode.phone_hash == pkey,
            MemberLoginCode.used_at.is_(None),
            MemberLoginCode.closed_at.is_(None),
        )
        .values(closed_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    salt = secrets.token_hex(16)
    expires = now + CODE_TTL
    session.add(
        MemberLoginCode(
            phone_hash=pkey,
            ip_hash=ikey,
            member_id=member.id if member else None,
            salt=salt,
            # A non-member's row gets the hash of a different random code: it never matches.
            code_hash=_code_hash(salt, code if member or for_join else secrets.token_hex(8)),
            attempts=0,
            created_at=now,
            expires_at=expires,
            used_at=None,
            closed_at=None,
        )
    )
    session.flush()
    return Issued(code=code, member=member, expires_at=expires)


Outcome = Literal["ok", "wrong", "expired", "locked", "none"]


@dataclass(frozen=True)
class Verified:
    outcome: Outcome
    member_id: int | None = None
    attempts_left: int = 0


def verify_code(
    session: Session, phone_e164: str, code: str, *, for_join: bool = False
) -> Verified:
    """Check a code against the newest open code for the phone. Commits attempts too:
    the caller must not roll back on a wrong answer (nothing is raised). ``for_join``:
    a code issued to a non-member also passes (``member_id`` is then None)."""
    now = utcnow()
    pkey = phone_key(phone_e164)
    _advisory_lock(session, pkey)
    q = (
        select(MemberLoginCode)
        .where(MemberLoginCode.phone_hash == pkey, MemberLoginCode.used_at.is_(None))
        .order_by(MemberLoginCode.id.desc())
        .limit(1)
    )
    if not is_sqlite(session):
        q = q.with_for_update()
    row = session.scalars(q.execution_options(populate_existing=True)).first()
    if row is None:
        return Verified("none")
    if row.closed_at is not None:
        return Verified("locked" if row.attempts >= MAX_ATTEMPTS else "none")
    if as_utc(row.expires_at) <= now:
        return Verified("expired")
    cleaned = code.strip()
    good = (
        (row.member_id is not None or for_join)
        and len(cleaned) == 6
        and cleaned.isdigit()
        and constant_time_equals(_code_hash(row.salt, cleaned), row.code_hash)
    )
    if not good:
        row.attempts += 1
        if row.attempts >= MAX_ATTEMPTS:
            row.closed_at = now
            session.flush()
            return Verified("locked")
        session.flush()
        return Verified("wrong", attempts_left=MAX_ATTEMPTS - row.attempts)
    row.used_at = now
    row.closed_at = now
    session.flush()
    return Verified("ok", member_id=row.member_id)


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime


def start_session(session: Session, member_id: int) -> NewSession:
    now = utcnow()
    token, csrf = new_token(32), new_token(24)
    expires = now + SESSION_TTL
    session.add(
        MemberSession(
            token_hash=sha256_hex(token),
            member_id=member_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=expires,
            revoked_at=None,
        )
    )
    session.flush()
    return NewSession(token, csrf, expires)


def find_session(session: Session, token: str | None) -> MemberSession | None:
    """The live session for a cookie token, or None (unknown, expired or signed out)."""
    if not token or len(token) > 128:
        return None
    row = session.scalar(select(MemberSession).where(MemberSession.token_hash == sha256_hex(token)))
    if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= utcnow():
        return None
    member = session.get(Member, row.member_id)
    if member is None or member.status != "active":
        return None
    return row


def end_session(session: Session, token: str | None) -> None:
    if not token:
        return
    session.execute(
        update(MemberSession)
        .where(MemberSession.token_hash == sha256_hex(token), MemberSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


JOIN_CHANNELS = ("sms", "email", "push", "wechat")


def join(
    session: Session,
    phone_e164: str,
    *,
    consents: dict[str, bool],
    referral_code: str | None,
) -> Member:
    """Create the member whose phone was just verified, through the member service (the
    API's validation and events). A number that joined meanwhile gets its member back."""
    existing = members.find_by_identity(session, "phone", phone_e164)
    if existing is not None:
        return existing
    actor = Actor(name="member:self-registration", scope_path="/", principal="member-join")
    data = MemberCreate.model_validate(
        {
            "phone": phone_e164,
            "join_channel": "member_page",
            "consents": {ch: bool(consents.get(ch)) for ch in JOIN_CHANNELS},
            "referral_code": referral_code or None,
        }
    )
    return members.create(session, actor, data).member
