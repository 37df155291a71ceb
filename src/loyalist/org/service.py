"""The organisation tree: HQ → regions → stores, and the scopes it defines."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.errors import FieldError, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.models import OrgUnit
from loyalist.org.errors import OrgUnitExists, OrgUnitNotFound
from loyalist.org.schemas import UnitOut, Units

KINDS = ("hq", "region", "store")
PARENT_KIND = {"region": "hq", "store": "region"}


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


def store_in_scope(session: Session, actor: Actor, code: str, field: str = "store") -> OrgUnit:
    """A store the actor may act for; unknown or out-of-scope stores look the same (404)."""
    unit = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
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


def units_view(session: Session, actor: Actor) -> Units:
    """The units in the caller's scope, as the API answers them."""
    return Units(
        items=[
            UnitOut(code=u.code, name=u.name, kind=u.kind, parent_id=u.parent_id, id=u.id)
            for u in list_units(session, actor)
        ]
    )
