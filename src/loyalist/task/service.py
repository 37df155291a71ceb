"""Member tasks: follow-ups for staff (opened by the ``open_task`` action, closed by staff)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.access.permissions import MEMBER_READ, MEMBER_WRITE, require
from loyalist.audit import service as audit
from loyalist.errors import FieldError, NotFound, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.models import MemberTask

OPEN, DONE, CANCELLED = "open", "done", "cancelled"
STATUSES = (OPEN, DONE, CANCELLED)


class TaskNotFound(NotFound):
    code = "task_not_found"
    title = "No such task"


def open_task(
    session: Session,
    *,
    member_id: int,
    org_path: str,
    title: str,
    note: str | None,
    due_at: datetime | None,
    cause: str,
) -> MemberTask:
    """Open a task about a member; ``cause`` says what opened it (an action's cause)."""
    task = MemberTask(
        member_id=member_id,
        org_path=org_path,
        title=title[:200],
        note=note[:2000] if note else None,
        due_at=due_at,
        status=OPEN,
        created_by=cause[:191],
        created_at=utcnow(),
        closed_at=None,
        closed_by=None,
    )
    session.add(task)
    session.flush()
    return task


def list_tasks(
    session: Session,
    actor: Actor,
    *,
    member_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[MemberTask]:
    """Tasks in the actor's scope, soonest due first (no due date last), then oldest."""
    require(actor, MEMBER_READ)
    if status is not None and status not in STATUSES:
        raise ValidationFailed(
            "Unknown task status.", [FieldError("status", f"one of {', '.join(STATUSES)}")]
        )
    q = select(MemberTask).where(MemberTask.org_path.startswith(actor.scope_path))
    if member_id is not None:
        q = q.where(MemberTask.member_id == member_id)
    if status is not None:
        q = q.where(MemberTask.status == status)
    q = q.order_by(MemberTask.due_at.is_(None), MemberTask.due_at, MemberTask.id).limit(limit)
    return list(session.scalars(q))


def close(session: Session, actor: Actor, task_id: int, *, status: str = DONE) -> MemberTask:
    """Mark a task done (or cancelled); closing a closed task changes nothing."""
    require(actor, MEMBER_WRITE)
    if status not in (DONE, CANCELLED):
        raise ValidationFailed(
            "A task is closed as done or cancelled.", [FieldError("status", "done or cancelled")]
        )
    task = session.get(MemberTask, task_id, with_for_update=True)
    if task is None or not actor.sees(task.org_path):
        raise TaskNotFound(f"No task {task_id}.")
    if task.status != OPEN:
        return task
    task.status, task.closed_at, task.closed_by = status, utcnow(), actor.name[:128]
    session.flush()
    audit.record(
        session,
        actor,
        "task.close",
        "member_task",
        task.id,
        org_path=task.org_path,
        before={"status": OPEN},
        after={"status": status},
    )
    return task
