"""API keys: shown once, stored as a SHA-256 hash, scoped to a node of the organisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import (
    ALL_ACTIONS,
    KEY_MANAGE,
    PERSONAL_DATA,
    POINTS_APPROVE,
    require,
)
from loyalist.audit import service as audit
from loyalist.errors import FieldError, Forbidden, NotFound, Unauthorized, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.hashing import constant_time_equals, new_token, sha256_hex
from loyalist.models import ApiKey, OrgUnit
from loyalist.org import service as org

KEY_PREFIX = "lk_"
ACCESS_LEVELS = ("read", "read_write")


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # the whole key, shown once


def create_key(
    session: Session,
    *,
    name: str,
    scope: str,
    access: str = "read_write",
    approval_free_limit: int | None = None,
    personal_data: bool = True,
) -> IssuedKey:
    """``scope`` is "hq" or the code of a region or store. ``approval_free_limit`` grants
    the key the right to apply manual adjustments up to that many points without a second
    person (otherwise the approval threshold applies). ``personal_data``: the key sees
    phones, e-mails, birthdays, openids and card numbers unmasked."""
    if access not in ACCESS_LEVELS:
        raise ValidationFailed("Unknown access level.", [FieldError("access", f"{ACCESS_LEVELS}")])
    if approval_free_limit is not None and approval_free_limit < 0:
        raise ValidationFailed(
            "The approval-free limit cannot be negative.",
            [FieldError("approval_free_limit", "must be >= 0")],
        )
    unit: OrgUnit | None = org.get_hq(session) if scope == "hq" else org.get_by_code(session, scope)
    if unit is None:
        raise ValidationFailed("There is no HQ yet.", [FieldError("scope", "create the org first")])
    prefix = KEY_PREFIX + new_token(6).replace("-", "x").replace("_", "y")[:8].lower()
    secret = new_token(24)
    full = f"{prefix}_{secret}"
    row = ApiKey(
        name=name,
        prefix=prefix,
        secret_hash=sha256_hex(full),
        org_unit_id=unit.id,
        access=access,
        approval_free_limit=approval_free_limit,
        personal_data=personal_data,
        revoked_at=None,
        last_used_at=None,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return IssuedKey(row, full)


def authenticate(session: Session, presented: str) -> Actor:
    """The actor behind a presented key; any mismatch is the same 401."""
    bad = Unauthorized("A valid API key is required (Authorization: Bearer lk_…).")
    if not presented.startswith(KEY_PREFIX) or "_" not in presented[len(KEY_PREFIX) :]:
        raise bad
    prefix = presented[: presented.index("_", len(KEY_PREFIX))]
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        raise bad
    if not constant_time_equals(row.secret_hash, sha256_hex(presented)):
        raise bad
    unit = session.get(OrgUnit, row.org_unit_id)
    assert unit is not None
    return Actor(
        name=f"apikey:{row.prefix}",
        scope_path=unit.path,
        can_write=row.access == "read_write",
        principal=f"key:{row.id}",
        approval_free_limit=row.approval_free_limit,
        permissions=None if row.personal_data else ALL_ACTIONS - {PERSONAL_DATA},
    )


def key_id(actor: Actor) -> int:
    """The id of the API key behind ``actor``."""
    return int(actor.principal.removeprefix("key:"))


# built once per process (speed, issue 11)
_REVOKED_AT = select(ApiKey.revoked_at).where(ApiKey.id == bindparam("key_id"))


def check_not_revoked(session: Session, actor: Actor) -> None:
    """401 when the key behind ``actor`` (authenticated earlier) has been revoked since."""
    kid = key_id(actor)
    revoked = session.execute(_REVOKED_AT, {"key_id": kid}).one_or_none()
    check_live(kid if revoked is not None and revoked[0] is None else None)


def live_key_column(key: Any) -> Any:
    """:func:`check_not_revoked`'s read as a scalar subquery of ``key`` (a key id: a bound
    parameter) for a caller's own statement: the key's id while it is not revoked, else
    NULL (a revoked key, or none with that id). Its value goes to :func:`check_live`."""
    return select(ApiKey.id).where(ApiKey.id == key, ApiKey.revoked_at.is_(None)).scalar_subquery()


def check_live(found: int | None) -> None:
    """401 unless ``found`` (:func:`live_key_column`'s value) names a key not revoked."""
    if found is None:
        raise Unauthorized("A valid API key is required (Authorization: Bearer lk_…).")


def require_write(actor: Actor) -> None:
    if not actor.can_write:
        raise Forbidden("This API key is read-only.")


def revoke(session: Session, prefix: str) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise ValidationFailed("Unknown key.", [FieldError("prefix", "no such key")])
    row.revoked_at = utcnow()
    return row


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


# ── administration (console: apikey.manage) ────────────────────────────────────────────
@dataclass(frozen=True)
class KeyRow:
    key: ApiKey
    unit: OrgUnit


def keys_in_scope(session: Session, actor: Actor) -> list[KeyRow]:
    """Keys bound to a unit ``actor`` sees, newest first (prefixes only: secrets are
    never kept)."""
    require(actor, KEY_MANAGE)
    rows = session.execute(
        select(ApiKey, OrgUnit)
        .join(OrgUnit, OrgUnit.id == ApiKey.org_unit_id)
        .order_by(ApiKey.id.desc())
    )
    return [KeyRow(k, u) for k, u in rows if actor.sees(u.path)]


def issue(
    session: Session,
    actor: Actor,
    *,
    name: str,
    scope: str,
    access: str,
    personal_data: bool,
    approval_free_limit: int | None = None,
) -> IssuedKey:
    """A new key for a unit ``actor`` sees, audited (the secret is not).

    ``approval_free_limit`` lets the key apply manual adjustments up to that many points
    without a second person; granting it takes the right to approve adjustments oneself
    (``points.approve``), since the key then approves in advance."""
    require(actor, KEY_MANAGE)
    if approval_free_limit:
        require(actor, POINTS_APPROVE)
    name = name.strip()
    if not name or len(name) > 128:
        raise ValidationFailed("A name is required.", [FieldError("name", "1–128 characters")])
    unit = (
        org.get_hq(session)
        if scope == "hq"
        else session.scalar(select(OrgUnit).where(OrgUnit.code == scope))
    )
    if unit is None or not actor.sees(unit.path):
        raise ValidationFailed("Unknown scope.", [FieldError("scope", "unknown unit")])
    issued = create_key(
        session,
        name=name,
        scope=unit.code if scope != "hq" else "hq",
        access=access,
        personal_data=personal_data,
        approval_free_limit=approval_free_limit,
    )
    audit.record(
        session,
        actor,
        "apikey.create",
        "api_key",
        issued.key.prefix,
        org_path=unit.path,
        after={
            "name": name,
            "scope": unit.code,
            "access": access,
            "personal_data": personal_data,
        }
        | ({"approval_free_limit": approval_free_limit} if approval_free_limit else {}),
    )
    return issued


def revoke_key(session: Session, actor: Actor, prefix: str) -> ApiKey:
    """Revoke at once: every process refuses the key from its next request."""
    require(actor, KEY_MANAGE)
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix).with_for_update())
    unit = session.get(OrgUnit, row.org_unit_id) if row is not None else None
    if row is None or unit is None or not actor.sees(unit.path):
        raise NotFound(f"No API key {prefix!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            session,
            actor,
            "apikey.revoke",
            "api_key",
            row.prefix,
            org_path=unit.path,
            before={"revoked": False},
            after={"revoked": True},
        )
    return row
