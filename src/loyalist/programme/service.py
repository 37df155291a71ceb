"""Applying, reading and dry-running the versioned programme."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.access.permissions import PROGRAMME_PUBLISH, require
from loyalist.audit import service as audit
from loyalist.errors import FieldError
from loyalist.events import service as events
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.hashing import sha256_hex
from loyalist.kit.jsonutil import dumps
from loyalist.models import ProgrammeVersion
from loyalist.programme.catalogue import sync_catalogue
from loyalist.programme.errors import NoProgramme, ProgrammeInvalid
from loyalist.programme.schemas import (
    ActiveProgramme,
    Programme,
    ProgrammeVersionOut,
    ProgrammeVersions,
)

_cache: dict[tuple[str, int, str], Programme] = {}
_cache_lock = threading.Lock()


def parse(data: Any) -> Programme:
    """Validate a programme document; every problem is named by its field path."""
    if not isinstance(data, dict):
        raise ProgrammeInvalid(
            "A programme document must be a mapping.", [FieldError("$", "expected a mapping")]
        )
    try:
        return Programme.model_validate(data)
    except ValidationError as exc:
        errors: list[FieldError] = []
        for err in exc.errors():
            if err["type"] == "condition_invalid":  # paths inside ``when:`` conditions
                errors.extend(
                    FieldError(path, message, "condition_invalid")
                    for path, message in err.get("ctx", {}).get("problems", [])
                )
                continue
            errors.append(
                FieldError(".".join(str(p) for p in err["loc"]) or "$", err["msg"], err["type"])
            )
        raise ProgrammeInvalid(
            f"The programme document has {len(errors)} error(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
            errors,
        ) from exc


def load_file(path: Path) -> Programme:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgrammeInvalid(f"Cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProgrammeInvalid(f"{path} is not valid YAML/JSON: {exc}") from exc
    return parse(data)


def as_document(programme: Programme) -> dict[str, Any]:
    doc: dict[str, Any] = programme.model_dump(mode="json")
    return doc


def apply(
    session: Session, programme: Programme, *, actor: str, note: str | None = None
) -> tuple[ProgrammeVersion, bool]:
    """Store ``programme`` as the next version; returns (version, created).

    Applying a document identical to the active one creates nothing.
    """
    doc = as_document(programme)
    checksum = sha256_hex(dumps(doc))
    current = latest_version(session)
    if current is not None and current.checksum == checksum:
        return current, False
    number = (current.version if current else 0) + 1
    pv = ProgrammeVersion(
        version=number,
        document=doc,
        checksum=checksum,
        created_by=actor,
        note=note,
        created_at=utcnow(),
    )
    session.add(pv)
    session.flush()
    sync_catalogue(session, programme)
    events.emit(session, "programme.published", {"version": number, "by": actor})
    audit.record(
        session,
        Actor(name=actor, principal=actor[:64]),
        "programme.publish",
        "programme",
        number,
        org_path="/",
        before={"version": current.version if current else None},
        after={"version": number, "checksum": checksum, "note": note},
    )
    return pv, True


def publish(
    session: Session, actor: Actor, programme: Programme, *, note: str | None = None
) -> tuple[ProgrammeVersion, bool]:
    """A staff user publishes a new version (only roles with ``programme.publish``)."""
    require(actor, PROGRAMME_PUBLISH)
    return apply(session, programme, actor=actor.name, note=note)


def in_force_at(session: Session, at: datetime) -> tuple[int, Programme]:
    """The programme version in force at ``at``: the last one published by then. History from
    before the first version (orders imported from before the programme started) gets the
    active version, as no other was ever in force."""
    active_number, active_programme = active(session)
    number = session.scalar(
        select(ProgrammeVersion.version)
        .where(ProgrammeVersion.created_at <= at)
        .order_by(ProgrammeVersion.version.desc())
        .limit(1)
    )
    if number is None or int(number) == active_number:
        return active_number, active_programme
    return int(number), get_version(session, int(number))


def latest_version(session: Session) -> ProgrammeVersion | None:
    return session.scalar(select(ProgrammeVersion).order_by(ProgrammeVersion.version.desc()))


def active(session: Session) -> tuple[int, Programme]:
    """The active programme and its version number.

    Cached per database, version and checksum: a database that is reset and loaded with
    another programme under the same version number never gets the old document back.
    """
    row = session.execute(
        select(ProgrammeVersion.version, ProgrammeVersion.checksum)
        .order_by(ProgrammeVersion.version.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NoProgramme("Apply a programme first: loyalist programme apply FILE.yaml")
    number, checksum = int(row[0]), str(row[1])
    key = (str(session.get_bind().engine.url), number, checksum)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return number, cached
    pv = session.scalar(select(ProgrammeVersion).where(ProgrammeVersion.version == number))
    assert pv is not None
    programme = Programme.model_validate(pv.document)
    with _cache_lock:
        _cache[key] = programme
    return number, programme


def get_version(session: Session, number: int) -> Programme:
    pv = session.scalar(select(ProgrammeVersion).where(ProgrammeVersion.version == number))
    if pv is None:
        raise NoProgramme(f"No programme version {number}.")
    return Programme.model_validate(pv.document)


def list_versions(session: Session) -> list[ProgrammeVersion]:
    return list(session.scalars(select(ProgrammeVersion).order_by(ProgrammeVersion.version)))


# --- Answers: the response schemas the API sends -----------------------------------------


def active_view(session: Session) -> ActiveProgramme:
    version, programme = active(session)
    return ActiveProgramme(version=version, document=as_document(programme))


def versions_view(session: Session) -> ProgrammeVersions:
    return ProgrammeVersions(
        items=[
            ProgrammeVersionOut(
                version=v.version,
                checksum=v.checksum,
                created_by=v.created_by,
                note=v.note,
                created_at=v.created_at,
            )
            for v in list_versions(session)
        ]
    )
