"""Applying, reading and dry-running the versioned programme."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from loyalist.access.permissions import PROGRAMME_PUBLISH, require
from loyalist.audit import service as audit
from loyalist.errors import FieldError
from loyalist.events import service as events
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.hashing import sha256_hex
from loyalist.kit.jsonutil import dumps
from loyalist.models import ConfigDocument, ProgrammeVersion
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
    import yaml  # when first needed, not when the server starts (memory, issue 11)

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
    session.info.pop(_ACTIVE, None)  # this transaction reads the new version from now on
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
    number = _version_at(session, active_number, at)
    if number is None or int(number) == active_number:
        return active_number, active_programme
    return int(number), get_version(session, int(number))


_history: dict[tuple[str, int, str], list[tuple[datetime, int]]] = {}


def _version_at(session: Session, active_number: int, at: datetime) -> int | None:
    """The last version published by ``at``. Versions are never changed or removed, so the
    list of (publication time, number) up to the active one is cached per process under the
    active version's key (a publish changes the key)."""
    memo = session.info.get(_ACTIVE)
    if memo is not None and at >= memo[2]:
        return active_number  # the newest version was published by then: no look-up
    key = (str(session.get_bind().engine.url), active_number, memo[3] if memo else "")
    with _cache_lock:
        history = _history.get(key)
    if history is None or memo is None:
        rows = session.execute(
            select(ProgrammeVersion.created_at, ProgrammeVersion.version)
            .where(ProgrammeVersion.version <= active_number)
            .order_by(ProgrammeVersion.version)
        ).all()
        history = [(r[0], int(r[1])) for r in rows]
        if memo is not None:
            with _cache_lock:
                _history[key] = history
    found = [number for published, number in history if published <= at]
    return found[-1] if found else None


def latest_version(session: Session) -> ProgrammeVersion | None:
    return session.scalar(select(ProgrammeVersion).order_by(ProgrammeVersion.version.desc()))


# speed (issue 11): the active version is read once per transaction (one statement: number,
# checksum and publication time), its parsed document once per process (keyed by database,
# number and checksum). ``apply`` forgets the transaction's memo, so a publish is seen at once.
_ACTIVE = "loyalist.programme.active"


_DOCUMENTS = "loyalist.programme.documents"


@event.listens_for(Session, "after_transaction_end")
def _forget_active(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # a session used for several transactions reads again
        session.info.pop(_ACTIVE, None)
        session.info.pop(_DOCUMENTS, None)


# speed (issue 11): the same statement also answers, for each configuration document kind
# read on every order (``watch_document``: the fraud rules), the version and checksum of its
# latest version in ``config_document``, so a cache of what that document parses to needs
# no statement of its own to know it is current (``document_key``). Documents, like
# programme versions, are only ever added: a publish makes a new (version, checksum).
def _build_active_row(kinds: tuple[str, ...]) -> Any:
    columns: list[Any] = []
    for kind in kinds:
        latest = (
            select(ConfigDocument.version, ConfigDocument.checksum)
            .where(ConfigDocument.kind == kind)
            .order_by(ConfigDocument.version.desc())
            .limit(1)
        )
        columns.append(latest.with_only_columns(ConfigDocument.version).scalar_subquery())
        columns.append(latest.with_only_columns(ConfigDocument.checksum).scalar_subquery())
    # Built once per set of kinds (SQLAlchemy reuses its cache key; speed, issue 11).
    return (
        select(
            ProgrammeVersion.version,
            ProgrammeVersion.checksum,
            ProgrammeVersion.created_at,
            *columns,
        )
        .order_by(ProgrammeVersion.version.desc())
        .limit(1)
    )


# The kinds watched and the statement that reads them, replaced together (one tuple).
_active_row: tuple[tuple[str, ...], Any] = ((), _build_active_row(()))


def watch_document(kind: str) -> None:
    """Read the latest version key of document ``kind`` with the active programme (see
    :func:`document_key`). Called at import by the kinds read on every order."""
    global _active_row
    with _cache_lock:
        kinds = _active_row[0]
        if kind not in kinds:
            _active_row = ((*kinds, kind), _build_active_row((*kinds, kind)))


def document_key(session: Session, kind: str) -> tuple[int, str] | bool | None:
    """The (version, checksum) of the latest version of watched document ``kind`` as this
    transaction's read of the active programme found it; None: it has no version; False:
    not known (not watched, the programme not read yet, or a document published since)."""
    known = session.info.get(_DOCUMENTS)
    if known is None or kind not in known:
        return False
    found: tuple[int, str] | None = known[kind]
    return found


def forget_documents(session: Session) -> None:
    """A document was published in this transaction: :func:`document_key` knows nothing."""
    session.info.pop(_DOCUMENTS, None)


def active(session: Session) -> tuple[int, Programme]:
    """The active programme and its version number.

    Cached per database, version and checksum: a database that is reset and loaded with
    another programme under the same version number never gets the old document back.
    """
    memo = session.info.get(_ACTIVE)
    if memo is not None:
        return memo[0], memo[1]
    kinds, query = _active_row
    # Core on the session's connection: columns only, no ORM layer (speed, issue 11)
    row = session.connection().execute(query).first()
    if row is None:
        raise NoProgramme("Apply a programme first: loyalist programme apply FILE.yaml")
    session.info[_DOCUMENTS] = {
        kind: (int(row[3 + 2 * i]), str(row[4 + 2 * i])) if row[3 + 2 * i] is not None else None
        for i, kind in enumerate(kinds)
    }
    return _adopt(session, int(row[0]), str(row[1]), row[2])


def _latest_version_column(column: Any) -> Any:
    return select(column).order_by(ProgrammeVersion.version.desc()).limit(1).scalar_subquery()


# The active version's number, checksum and publication time as scalar subqueries, for a
# caller's own statement (built once; speed, issue 11: the member read).
_ACTIVE_COLUMNS = (
    _latest_version_column(ProgrammeVersion.version).label("programme_version"),
    _latest_version_column(ProgrammeVersion.checksum).label("programme_checksum"),
    _latest_version_column(ProgrammeVersion.created_at).label("programme_created_at"),
)


def active_columns() -> tuple[Any, ...]:
    """What :func:`active` reads of the active version (number, checksum, publication
    time), as three scalar subqueries a caller puts in a statement of its own and hands to
    :func:`adopt_active` (a read that needs no configuration document: the watched
    documents' keys are not read, :func:`document_key` then knows none)."""
    return _ACTIVE_COLUMNS


def adopt_active(
    session: Session, number: int | None, checksum: str | None, created_at: datetime | None
) -> tuple[int, Programme]:
    """:func:`active` from the values of :func:`active_columns` read by the caller (all
    None: no programme), without a statement of its own (but the first of a version in
    this process: its document)."""
    memo = session.info.get(_ACTIVE)
    if memo is not None:
        return memo[0], memo[1]
    if number is None or checksum is None or created_at is None:
        raise NoProgramme("Apply a programme first: loyalist programme apply FILE.yaml")
    return _adopt(session, int(number), str(checksum), created_at)


def _adopt(
    session: Session, number: int, checksum: str, created_at: datetime
) -> tuple[int, Programme]:
    """The programme of version ``number`` with ``checksum`` (cached per process), memoised
    as this transaction's active programme."""
    key = (str(session.get_bind().engine.url), number, checksum)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is None:
        pv = session.scalar(select(ProgrammeVersion).where(ProgrammeVersion.version == number))
        assert pv is not None
        cached = Programme.model_validate(pv.document)
        with _cache_lock:
            _cache[key] = cached
    session.info[_ACTIVE] = (number, cached, created_at, checksum)
    return number, cached


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
