"""The audit trail: every change made in the console or through the API, before and after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, insert, or_, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import AUDIT_READ, require
from loyalist.kit import bulk
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.models import AuditLog, OrgUnit


def _plain(value: Any) -> Any:
    """A JSON-safe copy (dates → ISO strings, decimals → strings)."""
    if value is None:
        return None
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def record(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: Any,
    *,
    org_path: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    flush: bool = True,
) -> AuditLog:
    """Add an audit row; ``flush=False`` leaves it to the session's next flush (callers
    recording many rows at once: they are then written in one multi-row insert)."""
    row = AuditLog(
        actor=actor.name,
        principal=actor.principal,
        action=action,
        object_type=object_type,
        object_id=str(object_id) if object_id is not None else None,
        before=_plain(before),
        after=_plain(after),
        org_path=org_path,
        occurred_at=utcnow(),
    )
    session.add(row)
    if flush:
        session.flush()
    return row


_INSERT = insert(cast(Table, AuditLog.__table__))  # built once per process (speed, issue 11)


def write(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: Any,
    *,
    org_path: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """:func:`record` for a hot path that does not need the row back (speed, issue 11):
    one Core ``INSERT`` without ``RETURNING``, no ORM object, no flush."""
    session.connection().execute(  # Core on the session's transaction: no ORM layer
        _INSERT,
        [  # a list: executed as a batch, so no RETURNING of the new id
            {
                "actor": actor.name,
                "principal": actor.principal,
                "action": action,
                "object_type": object_type,
                "object_id": str(object_id) if object_id is not None else None,
                "before": _plain(before),
                "after": _plain(after),
                "org_path": org_path,
                "occurred_at": utcnow(),
            }
        ],
    )


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def search(
    session: Session, actor: Actor, f: AuditFilter, *, before_id: int | None = None, limit: int = 50
) -> list[AuditLog]:
    """Newest first, within the caller's scope; only roles with ``audit.read``."""
    require(actor, AUDIT_READ)
    q = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if actor.scope_path != "/":
        scoped = AuditLog.org_path.startswith(actor.scope_path)
        top = session.scalar(select(OrgUnit.kind).where(OrgUnit.path == actor.scope_path))
        if top == "hq":
            # Organisation-wide changes (a programme version) are recorded at "/".
            scoped = or_(scoped, AuditLog.org_path == "/")
        q = q.where(scoped)
    if before_id is not None:
        q = q.where(AuditLog.id < before_id)
    if f.actor:
        q = q.where(AuditLog.actor.like(f"%{f.actor}%"))
    if f.action:
        q = q.where(AuditLog.action == f.action)
    if f.object_type:
        q = q.where(AuditLog.object_type == f.object_type)
    if f.object_id:
        q = q.where(AuditLog.object_id == f.object_id)
    if f.since:
        q = q.where(AuditLog.occurred_at >= f.since)
    if f.until:
        q = q.where(AuditLog.occurred_at < f.until)
    return list(session.scalars(q))


def for_object(session: Session, object_type: str, object_id: Any) -> list[AuditLog]:
    q = (
        select(AuditLog)
        .where(AuditLog.object_type == object_type, AuditLog.object_id == str(object_id))
        .order_by(AuditLog.id)
    )
    return list(session.scalars(q))


def record_many(
    session: Session,
    actor: Actor,
    items: list[tuple[str, str, Any, str, dict[str, Any] | None]],
) -> int:
    """:func:`record` of many (action, object type, object id, org path, after) in one
    multi-row INSERT (bulk import). Answers how many."""
    if not items:
        return 0
    now = utcnow()
    bulk.insert_rows(
        session,
        cast(Table, AuditLog.__table__),
        [
            {
                "actor": actor.name,
                "principal": actor.principal,
                "action": action,
                "object_type": object_type,
                "object_id": str(object_id) if object_id is not None else None,
                "before": None,
                "after": _plain(after),
                "org_path": org_path,
                "occurred_at": now,
            }
            for action, object_type, object_id, org_path, after in items
        ],
    )
    return len(items)
