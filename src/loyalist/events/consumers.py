"""Consumers of the event stream: registered in one place, each with its own checkpoint.

A consumer is a function ``handler(session, event)`` registered with :func:`consumer`. The
worker calls :func:`run_pending` each tick; for every consumer it runs one batch in one
transaction:

* the consumer's checkpoint row (``event_consumer``) is locked (``FOR UPDATE SKIP LOCKED``
  on PostgreSQL: a second worker skips a consumer that is already running; SQLite
  serialises writers), so one consumer never runs twice at once;
* the events after the checkpoint are handed over in stream order (``position``, the order
  events became visible; the order per member follows from it);
* each event is handled in a savepoint together with its receipt (``event_receipt``, unique
  per consumer and event id): the handler's database effects and the receipt commit
  together with the new checkpoint, so a batch cut short by a crash is run again from the
  old checkpoint and applies nothing twice, and an event that already has a receipt (a
  checkpoint moved back by hand) is skipped.

Every event is therefore delivered at least once and its database effects apply once.
Effects outside the database (a message, an HTTP call) must carry the event id so the other
side can de-duplicate.

**A failing handler.** The savepoint rolls back, the failure is recorded in
``event_failure`` and the consumer waits at that event (keeping stream order) until
``retry_at``: 1 s, 2 s, 4 s … (doubling, capped at :data:`MAX_BACKOFF`). After
``max_attempts`` failures the event is *parked* for that consumer: it stays in
``event_failure`` with its last error (shown in ``GET /v1/health``, the console's event
stream page and ``loyalist stream parked``) and the consumer moves on, so one poisoned
event never blocks a consumer forever. Order is the price: a parked event is handled, if
ever, out of order, when an operator retries it (:func:`retry_parked`) after fixing the
cause. Other consumers are not affected by one consumer's failures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database, is_sqlite
from loyalist.models import EventConsumer, EventFailure, EventReceipt, OutboxEvent

log = logging.getLogger("loyalist.events.consumers")

Handler = Callable[[Session, OutboxEvent], None]
BatchHandler = Callable[[Session, list[OutboxEvent]], None]

DEFAULT_BATCH = 500
DEFAULT_MAX_ATTEMPTS = 8  # 1+2+4+…+64 s of retries (about two minutes), then parked
MAX_BACKOFF = timedelta(minutes=5)
_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Consumer:
    name: str
    handler: Handler
    types: frozenset[str] | None  # None: every event
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    together: bool = False  # see consumer()
    batch: BatchHandler | None = None  # see consumer()
    limit: int | None = None  # see consumer()


_REGISTRY: dict[str, Consumer] = {}


def consumer(
    name: str,
    types: Iterable[str] | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    together: bool = False,
    batch: BatchHandler | None = None,
    limit: int | None = None,
) -> Callable[[Handler], Handler]:
    """Register ``handler(session, event)`` as the consumer ``name``.

    ``types`` limits the events it gets (None: all). Registering a name twice with a
    different handler is a programming error.

    ``together=True`` says every effect of the handler is in the database session (no
    message sent, no HTTP call, no state kept in Python between calls): a batch then runs in
    ONE savepoint with its receipts written in one statement — a handful of round trips per
    batch instead of three per event, which is what keeps commit-to-consumer latency low
    under load. If one event fails, the whole savepoint is rolled back and the batch is run
    again event by event (the handlers of the events before the failing one are called a
    second time; their first effects were rolled back, so they still apply once).

    ``batch=handler_many(session, events)`` (implies ``together``) hands the whole batch to
    one call instead of one call per event, so the handler can read what the events share
    once and write set-based (multi-row inserts). It must have the same database effects as
    ``handler`` called for each event in order; when it raises, the batch is rolled back
    and run event by event through ``handler`` (which records the failure at its event).

    ``limit`` is the most events one batch of this consumer takes in the worker (None:
    :data:`DEFAULT_BATCH`; a caller's explicit limit to :func:`run_pending` wins): a
    set-based consumer, whose cost per batch is mostly fixed, takes bigger batches, so it
    catches up in fewer turns of the worker's loop, which runs every consumer's batch in
    turn.
    """
    if not name or len(name) > 100:
        raise ValueError("a consumer name has 1 to 100 characters")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    wanted = frozenset(types) if types is not None else None
    if wanted is not None:
        from loyalist.events.service import EVENT_TYPES

        unknown = sorted(wanted - EVENT_TYPES)
        if unknown:
            raise ValueError(f"consumer {name}: unknown event types {unknown}")

    def register(handler: Handler) -> Handler:
        got = _REGISTRY.get(name)
        if got is not None and got.handler is not handler:
            raise ValueError(f"consumer {name!r} is already registered")
        _REGISTRY[name] = Consumer(
            name, handler, wanted, max_attempts, together or batch is not None, batch, limit
        )
        return handler

    return register


def registered() -> list[Consumer]:
    """The registered consumers, by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def unregister(name: str) -> None:
    """Forget a consumer (tests register their own)."""
    _REGISTRY.pop(name, None)


def backoff(attempts: int) -> timedelta:
    """The wait before attempt ``attempts + 1``: 1 s, 2 s, 4 s … capped at MAX_BACKOFF."""
    return min(timedelta(seconds=2 ** max(0, attempts - 1)), MAX_BACKOFF)


# ── checkpoints ───────────────────────────────────────────────────────────────────────
def _insert(session: Session) -> Any:
    return sqlite_insert if is_sqlite(session) else pg_insert


def ensure_checkpoint(session: Session, name: str) -> None:
    """Create the consumer's checkpoint at the start of the stream if it has none."""
    stmt = _insert(session)(EventConsumer).values(
        name=name, position=0, handled=0, updated_at=utcnow()
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))


def lock_checkpoint(session: Session, name: str) -> EventConsumer | None:
    """The consumer's checkpoint row, locked for this transaction; None when another
    worker holds it (PostgreSQL) — that worker is running the consumer."""
    ensure_checkpoint(session, name)
    q = select(EventConsumer).where(EventConsumer.name == name)
    if not is_sqlite(session):
        q = q.with_for_update(skip_locked=True)
    return session.scalar(q)


def stream_head(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(OutboxEvent.position), 0))) or 0)


# ── running ───────────────────────────────────────────────────────────────────────────
def run_pending(db: Database, *, limit: int | None = None) -> int:
    """One batch of at most ``limit`` events (None: the consumer's own limit, else
    :data:`DEFAULT_BATCH`) for every registered consumer, each in its own transaction.
    Returns the number of events handled (parked ones included)."""
    total = 0
    for c in registered():

        def batch(s: Session, c: Consumer = c) -> int:
            return run_batch(s, c, limit=limit or c.limit or DEFAULT_BATCH)

        try:
            total += db.run(batch)
        except Exception:  # a broken consumer must not stop the others
            log.exception("consumer %s: batch failed", c.name)
    return total


_MEMO = "loyalist.consumer.memo"


def batch_memo(session: Session) -> dict[str, Any]:
    """A dict that lives for the current consumer batch (empty at the start of each): for a
    handler to look up once per batch what is the same for every event (e.g. the webhook
    endpoints), instead of one query per event."""
    memo = session.info.get(_MEMO)
    if memo is None:
        memo = session.info[_MEMO] = {}
    return memo


def run_batch(session: Session, c: Consumer, *, limit: int = DEFAULT_BATCH) -> int:
    """Hand the events after ``c``'s checkpoint to its handler (see the module notes)."""
    session.info[_MEMO] = {}
    try:
        return _run_batch(session, c, limit=limit)
    finally:
        session.info.pop(_MEMO, None)


def _run_batch(session: Session, c: Consumer, *, limit: int = DEFAULT_BATCH) -> int:
    cp = lock_checkpoint(session, c.name)
    if cp is None:
        return 0
    now = utcnow()
    waiting = session.scalar(
        select(EventFailure).where(
            EventFailure.consumer == c.name, EventFailure.parked_at.is_(None)
        )
    )
    if waiting is not None and waiting.retry_at > now:
        return 0
    head = stream_head(session)
    q = (
        select(OutboxEvent)
        .where(OutboxEvent.position > cp.position, OutboxEvent.position <= head)
        .order_by(OutboxEvent.position)
        .limit(limit)
    )
    if c.types is not None:
        q = q.where(OutboxEvent.type.in_(sorted(c.types)))
    events = list(session.scalars(q))
    done = set(
        session.scalars(
            select(EventReceipt.event_id).where(
                EventReceipt.consumer == c.name,
                EventReceipt.event_id.in_([e.event_id for e in events]),
            )
        )
    )
    todo = [ev for ev in events if ev.event_id not in done]
    last = cp.position
    handled = 0
    stopped = False
    if c.together and todo and (waiting is None or waiting.event_id != todo[0].event_id):
        handled = _run_together(session, c, todo)
    if handled:  # the whole batch went through in one savepoint
        last = int(events[-1].position or 0)
    else:
        last, handled, stopped = _run_one_by_one(session, c, events, done, waiting, now, last)
    if not stopped and len(events) < limit:
        last = max(last, head)  # nothing of its types up to the head: skip past it
    if last != cp.position or handled:
        cp.position = last
        cp.handled += handled
        cp.updated_at = now
    session.flush()
    return handled


def _receipts(session: Session, name: str, handled: list[tuple[OutboxEvent, datetime]]) -> None:
    """One multi-row insert of the receipts of ``handled`` (event, moment it was handled)."""
    if handled:
        session.execute(
            insert(EventReceipt),
            [
                {
                    "consumer": name,
                    "event_id": ev.event_id,
                    "position": int(ev.position or 0),
                    "handled_at": at,  # per event: the latency benchmark reads it
                }
                for ev, at in handled
            ],
        )


def _run_together(session: Session, c: Consumer, events: list[OutboxEvent]) -> int:
    """The common case: every handler succeeds. All of ``events`` run in ONE savepoint with
    their receipts written in one statement (a few round trips for the whole batch instead of
    three per event). Returns how many were handled; 0 when a handler failed — the savepoint
    is then rolled back whole and the caller runs the batch event by event, which records the
    failure at the right event."""
    info = dict(session.info)  # handlers may note things per batch (e.g. "folded")
    handled: list[tuple[OutboxEvent, datetime]] = []
    try:
        with session.begin_nested():
            if c.batch is not None:
                c.batch(session, events)
                at = utcnow()
                handled = [(ev, at) for ev in events]
            else:
                for ev in events:
                    c.handler(session, ev)
                    handled.append((ev, utcnow()))
            _receipts(session, c.name, handled)
            session.flush()
    except Exception:
        log.debug("consumer %s: batch failed together; running it event by event", c.name)
        session.info.clear()
        session.info.update(info)
        session.info[_MEMO] = {}  # what was looked up may have been rolled back with it
        return 0
    return len(handled)


def _run_one_by_one(
    session: Session,
    c: Consumer,
    events: list[OutboxEvent],
    done: set[str],
    waiting: EventFailure | None,
    now: datetime,
    last: int,
) -> tuple[int, int, bool]:
    """Each event in its own savepoint with its receipt, stopping at (or parking) a failing
    one. Returns the new checkpoint position, events handled and whether it stopped."""
    handled = 0
    for ev in events:
        position = int(ev.position or 0)
        if ev.event_id in done:  # handled before the checkpoint was moved back
            last = position
            continue
        try:
            with session.begin_nested():
                c.handler(session, ev)
                _receipts(session, c.name, [(ev, utcnow())])
                session.flush()
        except Exception as exc:
            failure = waiting if waiting is not None and waiting.event_id == ev.event_id else None
            if _failed(session, c, ev, failure, exc, now):
                last = position  # parked: move on
                handled += 1
                continue
            return last, handled, True
        if waiting is not None and waiting.event_id == ev.event_id:
            session.delete(waiting)  # it went through on a retry
            waiting = None
        last = position
        handled += 1
    return last, handled, False


def _failed(
    session: Session,
    c: Consumer,
    ev: OutboxEvent,
    failure: EventFailure | None,
    exc: Exception,
    now: datetime,
) -> bool:
    """Record a handler failure; True when the event is now parked (the consumer moves on)."""
    error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
    if failure is None:
        failure = EventFailure(
            consumer=c.name,
            event_id=ev.event_id,
            position=int(ev.position or 0),
            attempts=0,
            last_error=error,
            retry_at=now,
            parked_at=None,
            first_failed_at=now,
        )
        session.add(failure)
    failure.attempts += 1
    failure.last_error = error
    failure.retry_at = now + backoff(failure.attempts)
    parked = failure.attempts >= c.max_attempts
    if parked:
        failure.parked_at = now
        log.error("consumer %s parked event %s: %s", c.name, ev.event_id, error)
    else:
        log.warning(
            "consumer %s failed on event %s (attempt %d): %s",
            c.name,
            ev.event_id,
            failure.attempts,
            error,
        )
    session.flush()
    return parked


def retry_parked(session: Session, name: str, event_id: str) -> bool:
    """Run a parked event through its consumer again now (after the cause was fixed).

    True when it went through (receipt written, failure row removed); False when it failed
    again (the row stays parked with the new error). LookupError when there is no such
    parked event or consumer.
    """
    c = _REGISTRY.get(name)
    failure = session.scalar(
        select(EventFailure).where(
            EventFailure.consumer == name,
            EventFailure.event_id == event_id,
            EventFailure.parked_at.is_not(None),
        )
    )
    if c is None or failure is None:
        raise LookupError(f"no parked event {event_id} for consumer {name}")
    ev = session.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event_id))
    if ev is None:
        raise LookupError(f"no event {event_id}")
    now = utcnow()
    try:
        with session.begin_nested():
            c.handler(session, ev)
            session.add(
                EventReceipt(
                    consumer=name, event_id=event_id, position=failure.position, handled_at=now
                )
            )
            session.flush()
    except Exception as exc:
        failure.attempts += 1
        failure.last_error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        session.flush()
        return False
    session.execute(delete(EventFailure).where(EventFailure.id == failure.id))
    return True


# ── pruning ───────────────────────────────────────────────────────────────────────────
#: How long a receipt is kept after its consumer's checkpoint passed it.
RECEIPT_RETENTION = timedelta(days=7)


def prune_receipts(
    session: Session, now: datetime, *, limit: int, keep: timedelta = RECEIPT_RETENTION
) -> int:
    """Delete up to ``limit`` receipts no run will read again; how many went.

    A receipt is read only for events after its consumer's checkpoint (a batch run again
    from an old checkpoint). One goes when its event is at or below its consumer's
    checkpoint *and* it was written more than ``keep`` ago (room for an operator who moves
    a checkpoint back by hand); receipts of an event still in ``event_failure`` for that
    consumer, and of consumers without a checkpoint row, stay."""
    checkpoints = {
        str(n): int(p)
        for n, p in session.execute(select(EventConsumer.name, EventConsumer.position))
    }
    gone = 0
    for name, position in sorted(checkpoints.items()):
        if gone >= limit:
            break
        failing = select(EventFailure.event_id).where(EventFailure.consumer == name)
        ids = list(
            session.scalars(
                select(EventReceipt.id)
                .where(
                    EventReceipt.consumer == name,
                    EventReceipt.position <= position,
                    EventReceipt.handled_at < now - keep,
                    EventReceipt.event_id.not_in(failing),
                )
                .order_by(EventReceipt.position)
                .limit(limit - gone)
            )
        )
        if ids:
            session.execute(delete(EventReceipt).where(EventReceipt.id.in_(ids)))
        gone += len(ids)
    return gone


# ── lag ───────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Lag:
    name: str
    position: int
    events_behind: int
    seconds_behind: float
    handled: int
    retrying: int  # events it waits at (0 or 1)
    parked: int
    last_error: str | None
    updated_at: datetime | None


def lag(session: Session, names: Iterable[str] = ()) -> list[Lag]:
    """How far every consumer (the registered ones, ``names`` and any other checkpoint,
    such as an exporter's) is behind the stream: events not yet handled and the seconds
    between the newest event and the one at its checkpoint."""
    rows = {r.name: r for r in session.scalars(select(EventConsumer))}
    wanted = sorted({*_REGISTRY, *names, *rows})
    failures: dict[str, list[EventFailure]] = {}
    for f in session.scalars(select(EventFailure).order_by(EventFailure.position)):
        failures.setdefault(f.consumer, []).append(f)
    out = []
    for name in wanted:
        c = _REGISTRY.get(name)
        row = rows.get(name)
        position = int(row.position) if row else 0
        typed = _of_types(c.types if c is not None else None)
        behind_q = typed(select(func.count()).where(OutboxEvent.position > position))
        behind = int(session.scalar(behind_q) or 0)
        seconds = 0.0
        if behind:
            newest = session.scalar(
                typed(select(func.max(OutboxEvent.occurred_at)).where(OutboxEvent.position > 0))
            )
            at_cp = session.scalar(
                typed(
                    select(OutboxEvent.occurred_at)
                    .where(OutboxEvent.position <= position)
                    .order_by(OutboxEvent.position.desc())
                    .limit(1)
                )
            ) or session.scalar(
                typed(
                    select(OutboxEvent.occurred_at)
                    .where(OutboxEvent.position > position)
                    .order_by(OutboxEvent.position)
                    .limit(1)
                )
            )
            if newest is not None and at_cp is not None:
                seconds = max(0.0, (newest - at_cp).total_seconds())
        mine = failures.get(name, [])
        parked = [f for f in mine if f.parked_at is not None]
        retrying = [f for f in mine if f.parked_at is None]
        last_error = mine[-1].last_error if mine else None
        out.append(
            Lag(
                name=name,
                position=position,
                events_behind=behind,
                seconds_behind=round(seconds, 3),
                handled=int(row.handled) if row else 0,
                retrying=len(retrying),
                parked=len(parked),
                last_error=last_error,
                updated_at=row.updated_at if row else None,
            )
        )
    return out


def _of_types(types: frozenset[str] | None) -> Callable[[Any], Any]:
    def where(q: Any) -> Any:
        return q if types is None else q.where(OutboxEvent.type.in_(sorted(types)))

    return where


def parked_events(session: Session, name: str | None = None) -> list[EventFailure]:
    """Parked events (of one consumer, or all), oldest first."""
    q = select(EventFailure).where(EventFailure.parked_at.is_not(None))
    if name is not None:
        q = q.where(EventFailure.consumer == name)
    return list(session.scalars(q.order_by(EventFailure.consumer, EventFailure.position)))


def health_view(session: Session) -> Any:
    """``GET /v1/health``: the stream's head, events waiting for a position, consumer lag."""
    from loyalist import __version__
    from loyalist.events import schemas, service

    head, waiting = service.stream_state(session)
    lags = [schemas.ConsumerLagOut(**vars(x)) for x in lag(session)]
    parked = any(x.parked for x in lags)
    return schemas.HealthOut(
        status="degraded" if parked else "ok",
        version=__version__,
        stream=schemas.StreamHealthOut(head=head, unpositioned=waiting, consumers=lags),
    )
