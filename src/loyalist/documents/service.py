"""Publishing, reading and comparing versioned configuration documents of every kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import require
from loyalist.audit import service as audit
from loyalist.documents import registry
from loyalist.documents.errors import DocumentInvalid, NoVersion
from loyalist.documents.registry import Kind, Version
from loyalist.events import service as events
from loyalist.kit import documents as kit
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.models import ConfigDocument
from loyalist.programme import service as programmes


def load_file(kind: str, path: Path) -> BaseModel:
    """A document of ``kind`` read from YAML or JSON and validated."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DocumentInvalid(f"Cannot read {path}: {exc.strerror}") from exc
    import yaml  # when first needed, not when the server starts (memory, issue 11)

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentInvalid(f"{path} is not valid YAML/JSON: {exc}") from exc
    return registry.get(kind).parse(data)


def validate(kind: str, data: Any) -> BaseModel:
    return registry.get(kind).parse(data)


def publish(
    session: Session, actor: Actor, kind: str, document: BaseModel | Any, *, note: str | None
) -> tuple[int, bool]:
    """Store ``document`` as the next version of ``kind``; returns (version, created).

    The same content as the latest version creates nothing. Earlier versions never change.
    """
    k = registry.get(kind)
    model = document if isinstance(document, k.schema) else k.parse(document)
    if k.store is not None:
        return k.store.publish(session, actor, model, note)
    require(actor, k.permission)
    return _publish_generic(session, actor, k, model, note)


def _latest(session: Session, kind: str) -> ConfigDocument | None:
    return session.scalar(
        select(ConfigDocument)
        .where(ConfigDocument.kind == kind)
        .order_by(ConfigDocument.version.desc())
        .limit(1)
    )


def _publish_generic(
    session: Session, actor: Actor, k: Kind, model: BaseModel, note: str | None
) -> tuple[int, bool]:
    doc = k.dump(model)
    checksum = kit.checksum(doc)
    current = _latest(session, k.name)
    if current is not None and current.checksum == checksum:
        return current.version, False
    number = (current.version if current else 0) + 1
    # Two publishers at once: the unique (kind, version) lets one win; Database.run retries
    # the other, which then publishes number + 1 (or finds the same content).
    programmes.forget_documents(session)  # this transaction reads the new version from now on
    row = ConfigDocument(
        kind=k.name,
        version=number,
        document=doc,
        checksum=checksum,
        created_by=actor.name[:128],
        note=note[:500] if note else None,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    events.emit(
        session,
        "document.published",
        {"kind": k.name, "version": number, "checksum": checksum, "by": actor.name},
    )
    audit.record(
        session,
        actor,
        "document.publish",
        "config_document",
        row.id,
        org_path="/",
        before={"kind": k.name, "version": current.version if current else None},
        after={"kind": k.name, "version": number, "checksum": checksum, "note": note},
    )
    return number, True


def _version(row: ConfigDocument) -> Version:
    return Version(
        row.kind,
        row.version,
        row.document,
        row.checksum,
        row.created_by,
        row.note,
        row.created_at,
    )


def versions(session: Session, kind: str) -> list[Version]:
    """Every version of ``kind``, oldest first."""
    k = registry.get(kind)
    if k.store is not None:
        return k.store.versions(session)
    q = select(ConfigDocument).where(ConfigDocument.kind == kind).order_by(ConfigDocument.version)
    return [_version(r) for r in session.scalars(q)]


# speed (issue 11): built once per process with a bound kind (SQLAlchemy reuses its key).
_LATEST = (
    select(ConfigDocument)
    .where(ConfigDocument.kind == bindparam("kind"))
    .order_by(ConfigDocument.version.desc())
    .limit(1)
)


def get(session: Session, kind: str, version: int | None = None) -> Version:
    """One version of ``kind`` (the latest when ``version`` is None)."""
    k = registry.get(kind)
    if k.store is not None:
        found = k.store.get(session, version)
    elif version is None:  # the latest: read per order (fraud rules), so built once
        row = session.scalar(_LATEST, {"kind": kind})
        found = _version(row) if row is not None else None
    else:
        q = select(ConfigDocument).where(ConfigDocument.kind == kind)
        row = session.scalar(q.where(ConfigDocument.version == version))
        found = _version(row) if row is not None else None
    if found is None:
        what = f"version {version}" if version is not None else "any version"
        raise NoVersion(f"The {kind} document has no {what}.")
    return found


def watch(kind: str) -> None:
    """Kind ``kind`` is read on every order: the read of the active programme also reads
    the key of its latest version (:func:`latest_key`; speed, issue 11)."""
    programmes.watch_document(kind)


def latest_key(session: Session, kind: str) -> tuple[int, str] | bool | None:
    """(version, checksum) of the latest version of a watched ``kind``, known without a
    statement once this transaction read the active programme; None: no version; False:
    not known here (then :func:`get`)."""
    return programmes.document_key(session, kind)


def diff(session: Session, kind: str, before: int, after: int) -> list[str]:
    """A unified diff between two versions of ``kind`` ([] when they are equal)."""
    a = get(session, kind, before)
    b = get(session, kind, after)
    return kit.diff(a.document, b.document, f"{kind} v{before}", f"{kind} v{after}")
