"""Webhook endpoints, deliveries and attempts (Standard Webhooks).

An endpoint receives the events of its scope (an org unit: events whose org path starts
with the unit's path) and the programme-wide events (no org path, e.g.
``programme.published``: every API key may read those too). The ``webhooks`` consumer
turns each event into one delivery per matching endpoint; each attempt is a job
(``webhooks.deliver``) that signs and POSTs the event envelope, records the attempt and
enqueues the next one on the schedule itself. Services never commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.access import permissions as perm
from loyalist.audit import service as audit
from loyalist.config import get_settings
from loyalist.errors import FieldError, ValidationFailed
from loyalist.events import consumers
from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.pagination import encode_cursor
from loyalist.models import (
    OrgUnit,
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from loyalist.org import service as org
from loyalist.webhooks import domain, schemas, sender, vault
from loyalist.webhooks.errors import (
    DeliveryNotFound,
    EndpointDisabled,
    EndpointNotFound,
    ReplayTooLarge,
    TargetRefused,
)
from loyalist.webhooks.schemas import EndpointCreate, EndpointUpdate

JOB_KIND = "webhooks.deliver"
MAX_REPLAY = 5_000  # events one range replay may schedule
STATUSES = ("pending", "succeeded", "failed")


# ── endpoints ───────────────────────────────────────────────────────────────────────
def _allow_private() -> bool:
    return get_settings().webhooks_allow_private


def check_url(url: str, field: str = "url") -> str:
    """``url`` if it can be a target now (scheme, host, and where it resolves)."""
    url = url.strip()
    problem = domain.url_problem(url)
    if problem:
        raise ValidationFailed(f"The URL is not accepted: {problem}.", [FieldError(field, problem)])
    try:
        sender.resolve(url, allow_private=_allow_private())
    except sender.TargetRefused as exc:
        raise TargetRefused(
            f"The URL is not accepted: {exc}.",
            [FieldError(field, str(exc), "target_refused")],
        ) from exc
    return url


def check_types(types: list[str] | None, field: str = "event_types") -> list[str] | None:
    if types is None:
        return None
    if not types:
        raise ValidationFailed(
            "List at least one event type, or null for every type.",
            [FieldError(field, "must not be empty (null: every type)", "empty")],
        )
    unknown = [
        FieldError(f"{field}.{i}", f"unknown event type {t!r}", "unknown_event_type")
        for i, t in enumerate(types)
        if t not in events.EVENT_TYPES
    ]
    if unknown:
        raise ValidationFailed("Unknown event types.", unknown)
    return sorted(set(types))


def _scope_unit(session: Session, actor: Actor, code: str | None) -> OrgUnit:
    if code is None:
        unit = session.scalar(select(OrgUnit).where(OrgUnit.path == actor.scope_path))
        if unit is None and actor.scope_path == "/":  # the system actor: the whole tree
            unit = org.get_hq(session)
    else:
        unit = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if unit is None or not actor.sees(unit.path):
        raise ValidationFailed(
            f"No organisation unit {code!r} in your scope.",
            [FieldError("scope", "unknown org unit", "unknown_org_unit")],
        )
    return unit


def _snapshot(ep: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": ep.url,
        "event_types": ep.event_types,
        "description": ep.description,
        "scope": ep.scope,
        "enabled": ep.enabled,
    }


def create_endpoint(
    session: Session, actor: Actor, data: EndpointCreate
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its signing secret (returned only here)."""
    perm.require(actor, perm.WEBHOOK_MANAGE)
    url = check_url(data.url)
    types = check_types(data.event_types)
    unit = _scope_unit(session, actor, data.scope)
    now = utcnow()
    secret = domain.new_secret()
    ep = WebhookEndpoint(
        url=url,
        description=data.description,
        event_types=types,
        org_path=unit.path,
        scope=unit.code,
        enabled=data.enabled,
        disabled_reason=None if data.enabled else "manual",
        secret_enc=vault.seal(secret),
        previous_secret_enc=None,
        previous_secret_until=None,
        created_by=actor.name,
        created_at=now,
        updated_at=now,
        deleted_at=None,
    )
    session.add(ep)
    session.flush()
    audit.record(
        session, actor, "webhook.create", "webhook_endpoint", ep.id,
        org_path=ep.org_path, after=_snapshot(ep),
    )  # fmt: skip
    return ep, secret


def get_endpoint(
    session: Session, actor: Actor, endpoint_id: int, *, lock: bool = False
) -> WebhookEndpoint:
    q = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if lock:
        q = q.with_for_update()
    ep = session.scalar(q)
    if ep is None or ep.deleted_at is not None or not actor.sees(ep.org_path):
        raise EndpointNotFound(f"No webhook endpoint {endpoint_id}.")
    return ep


def list_endpoints(
    session: Session,
    actor: Actor,
    *,
    after: int | None,
    limit: int,
    enabled: bool | None = None,
) -> list[WebhookEndpoint]:
    perm.require(actor, perm.WEBHOOK_READ)
    q = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookEndpoint.id.desc())
        .limit(limit)
    )
    if actor.scope_path != "/":
        q = q.where(WebhookEndpoint.org_path.startswith(actor.scope_path))
    if enabled is not None:
        q = q.where(WebhookEndpoint.enabled.is_(enabled))
    if after is not None:
        q = q.where(WebhookEndpoint.id < after)
    return list(session.scalars(q))


def read_endpoint(session: Session, actor: Actor, endpoint_id: int) -> WebhookEndpoint:
    perm.require(actor, perm.WEBHOOK_READ)
    return get_endpoint(session, actor, endpoint_id)


def update_endpoint(
    session: Session, actor: Actor, endpoint_id: int, data: EndpointUpdate
) -> WebhookEndpoint:
    perm.require(actor, perm.WEBHOOK_MANAGE)
    ep = get_endpoint(session, actor, endpoint_id, lock=True)
    before = _snapshot(ep)
    given = data.model_fields_set
    if "url" in given:
        if data.url is None:
            raise ValidationFailed("url cannot be null.", [FieldError("url", "required")])
        ep.url = check_url(data.url)
    if "event_types" in given:
        ep.event_types = check_types(data.event_types)
    if "description" in given:
        ep.description = data.description or ""
    if "enabled" in given:
        if data.enabled is None:
            raise ValidationFailed("enabled cannot be null.", [FieldError("enabled", "required")])
        if data.enabled != ep.enabled:
            ep.enabled = data.enabled
            ep.disabled_reason = None if data.enabled else "manual"
    ep.updated_at = utcnow()
    audit.record(
        session, actor, "webhook.update", "webhook_endpoint", ep.id,
        org_path=ep.org_path, before=before, after=_snapshot(ep),
    )  # fmt: skip
    return ep


def delete_endpoint(session: Session, actor: Actor, endpoint_id: int) -> WebhookEndpoint:
    """Removes the endpoint from lists and stops its deliveries (history is kept)."""
    perm.require(actor, perm.WEBHOOK_MANAGE)
    ep = get_endpoint(session, actor, endpoint_id, lock=True)
    now = utcnow()
    before = _snapshot(ep)
    ep.enabled = False
    ep.disabled_reason = "deleted"
    ep.deleted_at = now
    ep.updated_at = now
    audit.record(
        session, actor, "webhook.delete", "webhook_endpoint", ep.id,
        org_path=ep.org_path, before=before, after={**_snapshot(ep), "deleted": True},
    )  # fmt: skip
    return ep


def rotate_secret(
    session: Session, actor: Actor, endpoint_id: int, overlap: timedelta
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one keeps signing too until ``overlap`` has passed."""
    perm.require(actor, perm.WEBHOOK_MANAGE)
    ep = get_endpoint(session, actor, endpoint_id, lock=True)
    now = utcnow()
    secret = domain.new_secret()
    if overlap > timedelta(0):
        ep.previous_secret_enc = ep.secret_enc
        ep.previous_secret_until = now + overlap
    else:
        ep.previous_secret_enc = None
        ep.previous_secret_until = None
    ep.secret_enc = vault.seal(secret)
    ep.updated_at = now
    audit.record(
        session, actor, "webhook.rotate", "webhook_endpoint", ep.id,
        org_path=ep.org_path, after={"overlap_seconds": int(overlap.total_seconds())},
    )  # fmt: skip
    return ep, secret


def signing_secrets(ep: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    out = [vault.open_(ep.secret_enc)]
    if (
        ep.previous_secret_enc is not None
        and ep.previous_secret_until is not None
        and ep.previous_secret_until > now
    ):
        out.append(vault.open_(ep.previous_secret_enc))
    return out


# ── fan-out: one delivery per (endpoint, event) ─────────────────────────────────────
def matches(ep: WebhookEndpoint, event: OutboxEvent) -> bool:
    if ep.event_types is not None and event.type not in ep.event_types:
        return False
    return event.org_path is None or event.org_path.startswith(ep.org_path)


def _schedule(session: Session, d: WebhookDelivery) -> None:
    queue.enqueue(
        session,
        JOB_KIND,
        {"delivery_id": d.id, "run": d.run, "step": d.step},
        run_at=d.next_attempt_at,
        dedupe_key=f"webhook:{d.id}:{d.run}:{d.step}",
    )


def _new_delivery(
    session: Session, ep: WebhookEndpoint, event: OutboxEvent, now: datetime
) -> WebhookDelivery:
    d = WebhookDelivery(
        endpoint_id=ep.id,
        event_id=event.event_id,
        event_type=event.type,
        org_path=event.org_path,
        status="pending",
        run=1,
        step=0,
        attempts=0,
        next_attempt_at=now,
        last_status_code=None,
        last_error=None,
        created_at=now,
        updated_at=now,
        completed_at=None,
    )
    session.add(d)
    session.flush()
    _schedule(session, d)
    return d


def fan_out(session: Session, event: OutboxEvent) -> int:
    """Open a delivery for every enabled endpoint that wants ``event`` and existed when it
    occurred (at most one per endpoint and event: an existing delivery is left as it is).
    Returns how many were opened."""
    now = utcnow()
    memo = consumers.batch_memo(session)  # the endpoints: one query per consumer batch
    endpoints = memo.get("webhooks.endpoints")
    if endpoints is None:
        endpoints = memo["webhooks.endpoints"] = session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.id)
        ).all()
    # An endpoint gets the events that occur once it exists (earlier ones: replay).
    wanted = [ep for ep in endpoints if matches(ep, event) and event.occurred_at >= ep.created_at]
    if not wanted:
        return 0
    have = set(
        session.scalars(
            select(WebhookDelivery.endpoint_id).where(
                WebhookDelivery.event_id == event.event_id,
                WebhookDelivery.endpoint_id.in_([ep.id for ep in wanted]),
            )
        )
    )
    opened = 0
    for ep in wanted:
        if ep.id not in have:
            _new_delivery(session, ep, event, now)
            opened += 1
    return opened


# ── one attempt (the job) ───────────────────────────────────────────────────────────
def body_of(event: OutboxEvent) -> bytes:
    """The event envelope as sent: the same bytes on every attempt."""
    return json.dumps(
        events.as_dict(event), ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode()


def _finish(d: WebhookDelivery, status: str, now: datetime) -> None:
    d.status = status
    d.next_attempt_at = None
    d.completed_at = now
    d.updated_at = now


def attempt(session: Session, delivery_id: int, run: int, step: int) -> str:
    """Make attempt ``step + 1`` of run ``run`` of a delivery, if that is still what the
    delivery waits for (a replay or an earlier answer makes older jobs no-ops).

    Records the attempt, and either completes the delivery (succeeded; failed after the
    last attempt; failed and endpoint disabled on 410) or enqueues the next attempt on the
    schedule. Returns what happened ("stale", "cancelled" or the verdict).
    """
    d = session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
    )
    if d is None or d.status != "pending" or d.run != run or d.step != step:
        return "stale"
    ep = session.get(WebhookEndpoint, d.endpoint_id)
    now = utcnow()
    if ep is None or not ep.enabled or ep.deleted_at is not None:
        d.last_error = "the endpoint is disabled"
        _finish(d, "failed", now)
        return "cancelled"
    event = session.scalar(select(OutboxEvent).where(OutboxEvent.event_id == d.event_id))
    if event is None:  # pragma: no cover - events are never deleted
        d.last_error = "the event no longer exists"
        _finish(d, "failed", now)
        return "cancelled"
    settings = get_settings()
    body = body_of(event)
    timestamp = int(now.timestamp())
    headers = domain.headers(signing_secrets(ep, now), d.event_id, timestamp, body)
    answer = sender.post(
        ep.url,
        headers,
        body,
        allow_private=settings.webhooks_allow_private,
        connect_timeout_s=settings.webhooks_connect_timeout_s,
        timeout_s=settings.webhooks_timeout_s,
    )
    d.step += 1
    d.attempts += 1
    decision = domain.decide(
        attempts_in_run=d.step,
        status_code=answer.status_code,
        retry_after=domain.parse_retry_after(answer.retry_after, now),
        now=now,
        max_retry_after=timedelta(seconds=settings.webhooks_max_retry_after_s),
    )
    error = answer.error
    if error is None and decision.verdict != "succeeded":
        error = f"HTTP {answer.status_code}"
    outcome: str = decision.verdict
    if answer.error is not None and answer.error.startswith("refused:"):
        outcome = "failed" if outcome == "failed" else "refused"
    session.add(
        WebhookAttempt(
            delivery_id=d.id,
            run=d.run,
            number=d.attempts,
            attempted_at=now,
            webhook_timestamp=timestamp,
            status_code=answer.status_code,
            duration_ms=answer.duration_ms,
            outcome=outcome,
            error=domain.truncate(error, domain.ERROR_KEEP),
            response_body=answer.body,
            next_attempt_at=decision.next_attempt_at,
        )
    )
    d.last_status_code = answer.status_code
    d.last_error = domain.truncate(error, domain.ERROR_KEEP)
    d.updated_at = now
    if decision.verdict == "succeeded":
        _finish(d, "succeeded", now)
    elif decision.verdict == "gone":
        _finish(d, "failed", now)
        ep.enabled = False
        ep.disabled_reason = "gone"
        ep.updated_at = now
    elif decision.verdict == "failed":
        _finish(d, "failed", now)
    else:
        d.next_attempt_at = decision.next_attempt_at
        _schedule(session, d)
    return decision.verdict


# ── deliveries: lists and replay ────────────────────────────────────────────────────
@dataclass(frozen=True)
class DeliveryFilter:
    endpoint_id: int | None = None
    status: str | None = None
    event_id: str | None = None


def list_deliveries(
    session: Session, actor: Actor, f: DeliveryFilter, *, after: int | None, limit: int
) -> list[WebhookDelivery]:
    """Newest first, for endpoints in the actor's scope."""
    perm.require(actor, perm.WEBHOOK_READ)
    if f.status is not None and f.status not in STATUSES:
        raise ValidationFailed(
            "Unknown status.", [FieldError("status", f"one of {', '.join(STATUSES)}")]
        )
    q = (
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if actor.scope_path != "/":
        q = q.where(WebhookEndpoint.org_path.startswith(actor.scope_path))
    if f.endpoint_id is not None:
        q = q.where(WebhookDelivery.endpoint_id == f.endpoint_id)
    if f.status is not None:
        q = q.where(WebhookDelivery.status == f.status)
    if f.event_id is not None:
        q = q.where(WebhookDelivery.event_id == f.event_id)
    if after is not None:
        q = q.where(WebhookDelivery.id < after)
    return list(session.scalars(q))


def get_delivery(
    session: Session, actor: Actor, delivery_id: int, *, lock: bool = False
) -> tuple[WebhookDelivery, WebhookEndpoint]:
    perm.require(actor, perm.WEBHOOK_READ)
    q = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    if lock:
        q = q.with_for_update()
    d = session.scalar(q)
    ep = session.get(WebhookEndpoint, d.endpoint_id) if d is not None else None
    if d is None or ep is None or ep.deleted_at is not None or not actor.sees(ep.org_path):
        raise DeliveryNotFound(f"No webhook delivery {delivery_id}.")
    return d, ep


def attempts_of(session: Session, delivery_id: int) -> list[WebhookAttempt]:
    q = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.number)
    )
    return list(session.scalars(q))


def _restart(session: Session, d: WebhookDelivery, now: datetime) -> None:
    d.run += 1
    d.step = 0
    d.status = "pending"
    d.next_attempt_at = now
    d.completed_at = None
    d.updated_at = now
    _schedule(session, d)


def replay_delivery(session: Session, actor: Actor, delivery_id: int) -> WebhookDelivery:
    """A new series of attempts now (same webhook-id, new timestamp and signature)."""
    perm.require(actor, perm.WEBHOOK_MANAGE)
    d, ep = get_delivery(session, actor, delivery_id, lock=True)
    if not ep.enabled:
        raise EndpointDisabled(f"Endpoint {ep.id} is disabled; enable it before replaying.")
    _restart(session, d, utcnow())
    audit.record(
        session, actor, "webhook.replay", "webhook_delivery", d.id, org_path=ep.org_path,
        after={"event_id": d.event_id, "run": d.run},
    )  # fmt: skip
    return d


def replay_range(
    session: Session, actor: Actor, endpoint_id: int, since: datetime, until: datetime
) -> int:
    """Send again every event of the endpoint's types and scope that occurred in
    [since, until): existing deliveries start a new run, missing ones are opened."""
    perm.require(actor, perm.WEBHOOK_MANAGE)
    if until <= since:
        raise ValidationFailed(
            "until must be after since.", [FieldError("until", "must be after since")]
        )
    ep = get_endpoint(session, actor, endpoint_id, lock=True)
    if not ep.enabled:
        raise EndpointDisabled(f"Endpoint {ep.id} is disabled; enable it before replaying.")
    q = (
        select(OutboxEvent)
        .where(
            OutboxEvent.occurred_at >= since,
            OutboxEvent.occurred_at < until,
            OutboxEvent.position.is_not(None),
        )
        .order_by(OutboxEvent.position)
    )
    if ep.event_types is not None:
        q = q.where(OutboxEvent.type.in_(list(ep.event_types)))
    q = q.where(OutboxEvent.org_path.is_(None) | OutboxEvent.org_path.startswith(ep.org_path))
    candidates = list(session.scalars(q.limit(MAX_REPLAY + 1)))
    if len(candidates) > MAX_REPLAY:
        raise ReplayTooLarge(
            f"More than {MAX_REPLAY} events in that range; replay a shorter one.",
            [FieldError("until", "narrow the range", "too_many_events")],
        )
    now = utcnow()
    existing = {
        d.event_id: d
        for d in session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == ep.id,
                WebhookDelivery.event_id.in_([e.event_id for e in candidates]),
            )
            .order_by(WebhookDelivery.id)
            .with_for_update()
        )
    }
    for event in candidates:
        d = existing.get(event.event_id)
        if d is None:
            _new_delivery(session, ep, event, now)
        else:
            _restart(session, d, now)
    audit.record(
        session, actor, "webhook.replay", "webhook_endpoint", ep.id, org_path=ep.org_path,
        after={"since": since.isoformat(), "until": until.isoformat(),
               "deliveries": len(candidates)},
    )  # fmt: skip
    return len(candidates)


# ── response documents (what the API and the console show) ──────────────────────────
def endpoint_out(ep: WebhookEndpoint) -> schemas.Endpoint:
    return schemas.Endpoint(
        id=ep.id,
        url=ep.url,
        description=ep.description,
        event_types=ep.event_types,
        scope=ep.scope,
        enabled=ep.enabled,
        disabled_reason=ep.disabled_reason,
        previous_secret_until=ep.previous_secret_until,
        created_at=ep.created_at,
        updated_at=ep.updated_at,
    )


def with_secret(ep: WebhookEndpoint, secret: str) -> schemas.EndpointWithSecret:
    return schemas.EndpointWithSecret(**endpoint_out(ep).model_dump(), secret=secret)


def sealed_answer(ep: WebhookEndpoint, secret: str) -> dict[str, Any]:
    """The answer to a create or a rotation with its secret sealed: it is kept like this in
    the idempotency record (a replay shows the same secret, the table never holds it in
    clear); :func:`unsealed` opens it on the way out."""
    out: dict[str, Any] = with_secret(ep, vault.seal(secret)).model_dump(mode="json")
    return out


def unsealed(answer: dict[str, Any]) -> dict[str, Any]:
    if isinstance(answer.get("secret"), str):
        return {**answer, "secret": vault.open_(answer["secret"])}
    return answer


def delivery_out(d: WebhookDelivery) -> schemas.Delivery:
    return schemas.Delivery(
        id=d.id,
        endpoint_id=d.endpoint_id,
        event_id=d.event_id,
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=d.created_at,
        updated_at=d.updated_at,
        completed_at=d.completed_at,
    )


def attempt_out(a: WebhookAttempt) -> schemas.Attempt:
    return schemas.Attempt(
        number=a.number,
        run=a.run,
        attempted_at=a.attempted_at,
        webhook_timestamp=a.webhook_timestamp,
        status_code=a.status_code,
        duration_ms=a.duration_ms,
        outcome=a.outcome,
        error=a.error,
        response_body=a.response_body,
        next_attempt_at=a.next_attempt_at,
    )


def delivery_detail(session: Session, actor: Actor, delivery_id: int) -> schemas.DeliveryDetail:
    d, _ep = get_delivery(session, actor, delivery_id)
    return schemas.DeliveryDetail(
        **delivery_out(d).model_dump(),
        attempt_log=[attempt_out(a) for a in attempts_of(session, d.id)],
    )


def endpoint_page(
    session: Session, actor: Actor, *, after: int | None, limit: int, enabled: bool | None
) -> schemas.EndpointPage:
    rows = list_endpoints(session, actor, after=after, limit=limit, enabled=enabled)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return schemas.EndpointPage(items=[endpoint_out(r) for r in rows], next_cursor=nxt)


def delivery_page(
    session: Session, actor: Actor, f: DeliveryFilter, *, after: int | None, limit: int
) -> schemas.DeliveryPage:
    rows = list_deliveries(session, actor, f, after=after, limit=limit)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return schemas.DeliveryPage(items=[delivery_out(r) for r in rows], next_cursor=nxt)
