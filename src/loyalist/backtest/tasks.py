"""Backtests in the background (issue 15 item 8, the console page): job kind ``backtest.run``.

A backtest re-evaluates every member order of the chosen months (about a second per
thousand orders, more under load), so the console queues it as a job and polls its state.
The job row is the backtest's record — no table of its own: its payload holds the request
(the proposed document, the months, who asked, what it was called) and, once the job is
done, the ``result`` the page shows (the sums by month, tier and store). Nothing else is
written: the evaluation itself is read-only (``backtest.service``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalist.access.permissions import ANALYTICS_READ, DASHBOARD_READ, require
from loyalist.backtest import domain
from loyalist.backtest import service as backtests
from loyalist.errors import FieldError, ValidationFailed
from loyalist.jobs import queue
from loyalist.jobs.registry import JobContext, job_kind
from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc
from loyalist.models import Job
from loyalist.programme import service as programmes
from loyalist.programme.errors import ProgrammeInvalid

JOB_KIND = "backtest.run"
MAX_MONTHS = 24
MAX_DOCUMENT = 200_000  # characters of a pasted document


@dataclass(frozen=True)
class Request:
    id: int
    state: str  # queued | running | done | failed | dead
    label: str
    months: int
    requested_by: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    result: dict[str, Any] | None


def _line(line: domain.Line, b: backtests.Backtest) -> dict[str, int]:
    return {
        "orders": line.orders,
        "actual": line.actual,
        "proposed": line.proposed,
        "delta": line.delta,
        "liability_delta": line.liability_delta,
        "liability_delta_minor": b.money(line.liability_delta),
        "cost_delta_minor": b.cost(line.delta),
    }


def result_of(b: backtests.Backtest) -> dict[str, Any]:
    """What the page shows of a backtest (JSON)."""
    sm = b.summary
    return {
        "start": b.start.isoformat(),
        "end": b.end.isoformat(),
        "timezone": b.timezone,
        "breakage_rate": b.breakage_rate,
        "value_minor_per_100_points": b.value_minor_per_100_points,
        "reproduced": sm.reproduced,
        "total": _line(sm.total, b),
        "by_month": {k: _line(v, b) for k, v in sm.by_month.items()},
        "by_tier": {k: _line(v, b) for k, v in sm.by_tier.items()},
        "by_store": {k: _line(v, b) for k, v in sm.by_store.items()},
    }


def parse_document(text: str) -> dict[str, Any]:
    """A pasted programme document (YAML or JSON), validated; the field ``document``."""
    if not text.strip():
        raise ValidationFailed(
            "Paste a programme document or choose a version.",
            [FieldError("document", "required")],
        )
    if len(text) > MAX_DOCUMENT:
        raise ValidationFailed(
            "The document is too long.", [FieldError("document", f"at most {MAX_DOCUMENT}")]
        )
    import yaml  # when first needed, not when the server starts (memory, issue 11)

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(
            "The document is not valid YAML or JSON.",
            [FieldError("document", "not valid YAML or JSON", "invalid_yaml")],
        ) from exc
    try:
        return programmes.as_document(programmes.parse(data))
    except ProgrammeInvalid as exc:
        raise ValidationFailed(
            "The document is not a valid programme.",
            [FieldError("document", "; ".join(f"{e.field}: {e.message}" for e in exc.errors))],
        ) from exc


def request(
    session: Session, actor: Actor, document: dict[str, Any], months: int, label: str
) -> int:
    """Queue a backtest of ``document`` over the last ``months`` months; its job id."""
    require(actor, ANALYTICS_READ)
    require(actor, DASHBOARD_READ)
    if not 1 <= months <= MAX_MONTHS:
        raise ValidationFailed(
            f"Months are 1 to {MAX_MONTHS}.", [FieldError("months", f"1 to {MAX_MONTHS}")]
        )
    key = f"backtest:{uuid.uuid4().hex}"
    queue.enqueue(
        session,
        JOB_KIND,
        {
            "document": document,
            "months": months,
            "label": label[:200],
            "requested_by": actor.name,
        },
        dedupe_key=key,
    )
    found = session.scalar(select(Job.id).where(Job.dedupe_key == key))
    assert found is not None
    return int(found)


def _view(job: Job) -> Request:
    p = job.payload
    return Request(
        id=job.id,
        state=job.state,
        label=str(p.get("label", "")),
        months=int(p.get("months", 0)),
        requested_by=str(p.get("requested_by", "")),
        created_at=as_utc(job.created_at),
        finished_at=as_utc(job.finished_at) if job.finished_at is not None else None,
        error=job.last_error if job.state in ("failed", "dead") else None,
        result=p.get("result"),
    )


def latest(session: Session, actor: Actor, limit: int = 20) -> list[Request]:
    require(actor, ANALYTICS_READ)
    q = select(Job).where(Job.kind == JOB_KIND).order_by(Job.id.desc()).limit(limit)
    return [_view(j) for j in session.scalars(q)]


def get(session: Session, actor: Actor, job_id: int) -> Request | None:
    require(actor, ANALYTICS_READ)
    job = session.get(Job, job_id)
    return _view(job) if job is not None and job.kind == JOB_KIND else None


def compute(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Run the backtest a payload asks for (read-only) and return its result."""
    actor = Actor(name="system:backtest", scope_path="/", can_write=False, principal="system")
    proposed = programmes.parse(payload["document"])
    b = backtests.run(session, actor, proposed, int(payload["months"]), now=now)
    return result_of(b)


@job_kind(JOB_KIND, max_attempts=1)
def run_job(ctx: JobContext) -> None:
    result = compute(ctx.session, ctx.payload, ctx.now)
    ctx.session.execute(
        update(Job)
        .where(Job.id == ctx.job_id)
        .values(payload={**ctx.payload, "result": result})
        .execution_options(synchronize_session=False)
    )
