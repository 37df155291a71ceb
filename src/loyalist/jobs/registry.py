"""Job kinds and periodic schedules, registered by name.

A feature declares its jobs in its ``tasks.py``::

    @job_kind("webhooks.deliver", max_attempts=10)
    def deliver(ctx: JobContext) -> None: ...

and ``loyalist/bootstrap.py`` imports that module (``configure()``), so every process that
runs jobs knows every kind. A handler runs in ONE transaction together with marking its
job done: its database effects apply exactly once; raising rolls everything back and the
job is retried with exponential backoff and jitter, dead after ``max_attempts``.

``schedule("points.expire", "5 0 * * *")`` adds a periodic schedule: a cron expression in
the programme's time zone; each occurrence is enqueued once (dedupe key = kind + the
occurrence's local time), so an occurrence missed while no worker ran fires once later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

DEFAULT_MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class JobContext:
    """What a handler gets: its transaction's session and the job it runs."""

    session: Session
    job_id: int
    kind: str
    payload: dict[str, Any]
    attempt: int  # 1 for the first try
    now: datetime


Handler = Callable[[JobContext], None]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class Schedule:
    kind: str
    cron: str
    payload: dict[str, Any] = field(default_factory=dict)


_kinds: dict[str, JobKind] = {}
_schedules: dict[str, Schedule] = {}
_valid_crons: set[str] = set()  # expressions croniter has accepted


def job_kind(
    name: str, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> Callable[[Handler], Handler]:
    """Register ``handler`` for jobs of kind ``name`` (re-registering replaces it)."""
    if not name or len(name) > 100:
        raise ValueError("a job kind is a name of 1 to 100 characters")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")

    def register(handler: Handler) -> Handler:
        _kinds[name] = JobKind(name, handler, max_attempts)
        return handler

    return register


def schedule(kind: str, cron: str, payload: dict[str, Any] | None = None) -> None:
    """Enqueue a ``kind`` job at every occurrence of ``cron`` (programme time zone).

    The expression is checked by :func:`schedules`, which every planner calls, so that a
    process that never plans (the API server) does not import croniter (issue 11)."""
    _schedules[kind] = Schedule(kind, cron, dict(payload or {}))


def get(name: str) -> JobKind | None:
    return _kinds.get(name)


def kinds() -> dict[str, JobKind]:
    return dict(_kinds)


def schedules() -> list[Schedule]:
    """Every schedule; raises ``ValueError`` if one's cron expression is not valid."""
    from croniter import croniter

    plans = list(_schedules.values())
    for plan in plans:
        if plan.cron not in _valid_crons:
            if not croniter.is_valid(plan.cron):
                raise ValueError(f"invalid cron expression {plan.cron!r} ({plan.kind})")
            _valid_crons.add(plan.cron)
    return plans


def max_attempts_of(name: str) -> int:
    kind = _kinds.get(name)
    return kind.max_attempts if kind is not None else DEFAULT_MAX_ATTEMPTS


def unregister(name: str) -> None:
    """Forget a kind and its schedule (tests)."""
    _kinds.pop(name, None)
    _schedules.pop(name, None)
