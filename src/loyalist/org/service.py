"""The organisation tree: HQ → regions → stores, and the scopes it defines."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import bindparam, func, literal, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import ORG_MANAGE, require
from loyalist.audit import service as audit
from loyalist.errors import FieldError, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Base
from loyalist.models import OrgUnit
from loyalist.org.errors import OrgUnitExists, OrgUnitNotFound
from loyalist.org.schemas import UnitOut, Units

KINDS = ("hq", "region", "store")
PARENT_KIND = {"region": "hq", "store": "region"}
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def get_hq(session: Session) -> OrgUnit | None:
    return session.scalar(select(OrgUnit).where(OrgUnit.kind == "hq"))


def create_unit(
    session: Session, *, code: str, name: str, kind: str, parent_code: str | None = None
) -> OrgUnit:
    if kind not in KINDS:
        raise ValidationFailed("Unknown unit kind.", [FieldError("kind", f"one of {KINDS}")])
    if session.scalar(select(OrgUnit.id).where(OrgUnit.code == code)) is not None:
        raise OrgUnitExists(f"An organisation unit with code {code!r} exists.")
    parent: OrgUnit | None = None
    if kind == "hq":
        if get_hq(session) is not None:
            raise OrgUnitExists("There is already an HQ.")
    else:
        if parent_code is None:
            raise ValidationFailed(
                "A region or store needs a parent.", [FieldError("parent", "required")]
            )
        parent = get_by_code(session, parent_code)
        if parent.kind != PARENT_KIND[kind]:
            raise ValidationFailed(
                f"A {kind} must belong to a {PARENT_KIND[kind]}.",
                [FieldError("parent", f"must be a {PARENT_KIND[kind]}")],
            )
    unit = OrgUnit(
        code=code,
        name=name,
        kind=kind,
        parent_id=parent.id if parent else None,
        path="",
        created_at=utcnow(),
    )
    session.add(unit)
    session.flush()
    unit.path = f"{parent.path if parent else '/'}{unit.id}/"
    session.flush()
    return unit


def get_by_code(session: Session, code: str) -> OrgUnit:
    unit = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if unit is None:
        raise OrgUnitNotFound(f"No organisation unit {code!r}.")
    return unit


def get(session: Session, unit_id: int) -> OrgUnit:
    unit = session.get(OrgUnit, unit_id)
    if unit is None:
        raise OrgUnitNotFound(f"No organisation unit {unit_id}.")
    return unit


# speed (issue 11): read on every order; built once per process (cached SQL key).
_UNIT_BY_CODE = select(OrgUnit).where(OrgUnit.code == bindparam("code"))


def store_in_scope(session: Session, actor: Actor, code: str, field: str = "store") -> OrgUnit:
    """A store the actor may act for; unknown or out-of-scope stores look the same (404)."""
    return checked_store(actor, session.scalar(_UNIT_BY_CODE, {"code": code}), code, field)


def checked_store(actor: Actor, unit: OrgUnit | None, code: str, field: str = "store") -> OrgUnit:
    """``unit``, the unit a caller read by ``code``, checked as :func:`store_in_scope` does."""
    if unit is None or not actor.sees(unit.path):
        raise OrgUnitNotFound(
            f"No store {code!r}.", [FieldError(field, "unknown store", "unknown_store")]
        )
    if unit.kind != "store":
        raise ValidationFailed(
            f"{code!r} is not a store.", [FieldError(field, "must be a store", "not_a_store")]
        )
    return unit


def list_units(session: Session, actor: Actor) -> list[OrgUnit]:
    q = select(OrgUnit).order_by(OrgUnit.path)
    return [u for u in session.scalars(q) if u.path.startswith(actor.scope_path)]


def stores_under(session: Session, path: str) -> list[OrgUnit]:
    q = select(OrgUnit).where(OrgUnit.kind == "store", OrgUnit.path.startswith(path))
    return list(session.scalars(q.order_by(OrgUnit.code)))


# ── administration (console: org.manage) ───────────────────────────────────────────────
def _managed_unit(session: Session, actor: Actor, code: str) -> OrgUnit:
    require(actor, ORG_MANAGE)
    unit = session.scalar(select(OrgUnit).where(OrgUnit.code == code).with_for_update())
    if unit is None or not actor.sees(unit.path):
        raise OrgUnitNotFound(f"No organisation unit {code!r}.")
    return unit


def add_unit(
    session: Session, actor: Actor, *, code: str, name: str, kind: str, parent_code: str
) -> OrgUnit:
    """A region or store under a parent ``actor`` sees (console)."""
    require(actor, ORG_MANAGE)
    code, name = code.strip(), name.strip()
    errors = []
    if not _CODE.match(code):
        errors.append(FieldError("code", "1–64 of a-z 0-9 - _", "invalid_code"))
    if not name or len(name) > 128:
        errors.append(FieldError("name", "1–128 characters", "required"))
    if kind not in ("region", "store"):
        errors.append(FieldError("kind", "region or store"))
    if errors:
        raise ValidationFailed("The unit is not valid.", errors)
    parent = session.scalar(select(OrgUnit).where(OrgUnit.code == parent_code))
    if parent is None or not actor.sees(parent.path):
        raise ValidationFailed("Unknown parent.", [FieldError("parent", "unknown unit")])
    if parent.closed_at is not None:
        raise ValidationFailed("The parent is closed.", [FieldError("parent", "closed")])
    unit = create_unit(session, code=code, name=name, kind=kind, parent_code=parent.code)
    audit.record(
        session,
        actor,
        "org.create",
        "org_unit",
        unit.id,
        org_path=unit.path,
        after={"code": code, "name": name, "kind": kind, "parent": parent.code},
    )
    return unit


def rename(session: Session, actor: Actor, code: str, name: str) -> OrgUnit:
    unit = _managed_unit(session, actor, code)
    name = name.strip()
    if not name or len(name) > 128:
        raise ValidationFailed("A name is required.", [FieldError("name", "1–128 characters")])
    before = unit.name
    unit.name = name
    audit.record(
        session,
        actor,
        "org.rename",
        "org_unit",
        unit.id,
        org_path=unit.path,
        before={"name": before},
        after={"name": name},
    )
    return unit


# Tables whose rows carry a copy of a unit's path for scoping: moving a unit rewrites
# them (members, orders, redemptions and their history follow their store).
def _path_tables() -> list[Any]:
    return [t for t in Base.metadata.sorted_tables if "org_path" in t.c]


def move(session: Session, actor: Actor, code: str, new_parent_code: str) -> OrgUnit:
    """Move a store to another region (or a region under HQ): the unit's path, its
    descendants' paths and every scoped row's copy of them change in this transaction,
    so scopes follow at once."""
    unit = _managed_unit(session, actor, code)
    if unit.kind == "hq":
        raise ValidationFailed("HQ cannot move.", [FieldError("parent", "HQ has no parent")])
    parent = session.scalar(select(OrgUnit).where(OrgUnit.code == new_parent_code))
    if parent is None or not actor.sees(parent.path):
        raise ValidationFailed("Unknown parent.", [FieldError("parent", "unknown unit")])
    if parent.kind != PARENT_KIND[unit.kind]:
        raise ValidationFailed(
            f"A {unit.kind} must belong to a {PARENT_KIND[unit.kind]}.",
            [FieldError("parent", f"must be a {PARENT_KIND[unit.kind]}", "wrong_kind")],
        )
    if parent.closed_at is not None:
        raise ValidationFailed("The parent is closed.", [FieldError("parent", "closed")])
    old_path = unit.path
    new_path = f"{parent.path}{unit.id}/"
    if new_path == old_path:
        return unit
    before_parent = session.get(OrgUnit, unit.parent_id) if unit.parent_id else None
    n = len(old_path) + 1
    for table in [OrgUnit.__table__, *[t for t in _path_tables()]]:
        col = table.c.path if table is OrgUnit.__table__ else table.c.org_path
        session.execute(
            table.update()
            .where(col.startswith(old_path))
            .values({col.name: literal(new_path) + func.substr(col, n)})
        )
    session.expire_all()
    unit = get_by_code(session, code)
    unit.parent_id = parent.id
    audit.record(
        session,
        actor,
        "org.move",
        "org_unit",
        unit.id,
        org_path=unit.path,
        before={"parent": before_parent.code if before_parent else None},
        after={"parent": parent.code},
    )
    return unit


def close(session: Session, actor: Actor, code: str) -> OrgUnit:
    """Close a store: it takes no new members, staff or orders; history stays."""
    unit = _managed_unit(session, actor, code)
    if unit.kind != "store":
        raise ValidationFailed("Only a store closes.", [FieldError("code", "not a store")])
    if unit.closed_at is None:
        unit.closed_at = utcnow()
        audit.record(
            session,
            actor,
            "org.close",
            "org_unit",
            unit.id,
            org_path=unit.path,
            before={"closed": False},
            after={"closed": True},
        )
    return unit


def open_store_in_scope(session: Session, actor: Actor, code: str, field: str = "store") -> OrgUnit:
    """:func:`store_in_scope` for new business: a closed store is refused (422)."""
    return checked_open_store(actor, session.scalar(_UNIT_BY_CODE, {"code": code}), code, field)


def checked_open_store(
    actor: Actor, unit: OrgUnit | None, code: str, field: str = "store"
) -> OrgUnit:
    """``unit``, the unit a caller read by ``code`` (speed: the order path reads it with its
    member), checked as :func:`open_store_in_scope` does."""
    unit = checked_store(actor, unit, code, field)
    if unit.closed_at is not None:
        raise ValidationFailed(
            f"Store {code!r} is closed.", [FieldError(field, "the store is closed", "store_closed")]
        )
    return unit


def units_view(session: Session, actor: Actor) -> Units:
    """The units in the caller's scope, as the API answers them."""
    return Units(
        items=[
            UnitOut(code=u.code, name=u.name, kind=u.kind, parent_id=u.parent_id, id=u.id)
            for u in list_units(session, actor)
        ]
    )
