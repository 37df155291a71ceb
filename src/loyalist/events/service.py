"""Domain events, written to the outbox in the caller's transaction."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    Update,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, SessionTransaction

from loyalist.errors import FieldError, ValidationFailed
from loyalist.events.responses import EventOut, EventPage
from loyalist.kit import bulk, wake
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.kit.pagination import encode_cursor
from loyalist.kit.uow import UnitOfWork
from loyalist.models import OutboxEvent

log = logging.getLogger("loyalist.events")

SCHEMA_VERSION = 1

EVENT_TYPES = frozenset(
    {
        "member.created",
        "member.updated",
        "order.recorded",
        "order.returned",
        "points.earned",
        "points.activated",
        "points.redeemed",
        "points.restored",
        "points.expired",
        "points.expiring",
        "points.adjusted",
        "points.clawed_back",
        "tier.changed",
        "redemption.created",
        "redemption.cancelled",
        "programme.published",
        "document.published",
        "redemption.collected",
        # coupons (issue 12)
        "coupon.issued",
        "coupon.redeemed",
        "coupon.restored",
        "ledger.checkpoint",  # trust: daily export of the ledger's hash-chain heads
        # referrals and viral campaigns (issue 12)
        "referral.attributed",
        "referral.held",
        "referral.qualified",
        "referral.rewarded",
        "referral.rejected",
        "referral.clawed_back",
        "referral.leader",
        "assist.completed",
        "group.completed",
        "group.dissolved",
        # habits (issue 12 items 4-7)
        "checkin.recorded",
        "activity.recorded",
        "badge.awarded",
        "challenge.completed",
        "leaderboard.closed",
        "member.erased",  # trust: a member's personal data was erased
        "member.merged",  # trust: two members merged into one (issue 13 item 2)
        "member.merge_undone",  # trust: a merge was undone
        # households (issue 13, item 1)
        "household.created",
        "household.invited",
        "household.joined",
        "household.declined",
        "household.invitation_expired",
        "household.permission_changed",
        "household.left",
        "household.dissolved",
        "household.invitation_withdrawn",
        # fraud controls (issue 13)
        "fraud.held",
        "fraud.reviewed",
        "member.frozen",
        "member.unfrozen",
        # paid membership (issue 15 item 7)
        "pass.purchased",
        "pass.renewed",
        "pass.expiring",
        "pass.expired",
        "pass.refunded",
    }
)


def _event_row(
    type_: str, payload: dict[str, Any], member_id: int | None, org_path: str | None, now: datetime
) -> dict[str, Any]:
    """The outbox row of one event (its position is given after commit)."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_}")
    return {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "schema_version": SCHEMA_VERSION,
        "member_id": member_id,
        "org_path": org_path,
        "payload": payload,
        "occurred_at": now,
        "dispatched_at": None,
    }


def emit(
    session: Session,
    type_: str,
    payload: dict[str, Any],
    *,
    member_id: int | None = None,
    org_path: str | None = None,
) -> OutboxEvent:
    """Write a domain event to the outbox in the session's transaction: at the session's
    next flush, or, inside :func:`batched`, at the end of the block (its id is set then)."""
    row = _event_row(type_, payload, member_id, org_path, utcnow())
    row["position"] = None  # given after commit (the unit of work wrote it as NULL too)
    ev = OutboxEvent(**row)
    batch: _Batch | None = session.info.get(_BATCH)
    if batch is not None:
        batch.pending.append((row, ev))  # the session never tracks it: no unit-of-work bookkeeping
    else:
        session.add(ev)
    _sequence_after_commit(session)
    return ev


_BATCH = "loyalist.events.batch"


class _Batch:
    """The events of a :func:`batched` block, and where each savepoint begun in it began."""

    __slots__ = ("marks", "pending")

    def __init__(self) -> None:
        self.pending: list[tuple[dict[str, Any], OutboxEvent]] = []
        self.marks: dict[SessionTransaction, int] = {}


_OUTBOX = cast(Table, OutboxEvent.__table__)
# speed (issue 11): built once per process; with RETURNING sorted by the rows' order, many
# rows are one multi-row INSERT on PostgreSQL (as the unit of work's flush of several
# events was) and their ids come back in the order the events were emitted.
_INSERT_BATCH = insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True)


@contextmanager
def batched(session: Session) -> Iterator[None]:
    """Events emitted in the block (by any code it calls) are written when it ends, in one
    multi-row Core INSERT, in the order they were emitted, without the ORM's unit of work
    (speed, issue 11: the order path). The transient :class:`OutboxEvent` that ``emit``
    answers gets its id then. Events emitted before the block and still waiting for a flush
    are flushed first, so ids keep following the order of emission. When the block raises,
    its events are dropped with the work that raised (the transaction, or the savepoint,
    the caller rolls back); a savepoint begun in the block and rolled back drops the events
    emitted since it began, as it would have dropped them from the session. A block inside
    another is part of the outer one."""
    if _BATCH in session.info:
        yield
        return
    batch = _Batch()
    session.info[_BATCH] = batch
    try:
        yield
    finally:
        session.info.pop(_BATCH, None)
    pending = batch.pending
    if not pending:
        return
    if any(isinstance(obj, OutboxEvent) for obj in session.new):
        session.flush()  # earlier events first: ids follow the order of emission
    ids = session.connection().execute(_INSERT_BATCH, [row for row, _ev in pending])
    for (_row, ev), new_id in zip(pending, ids.scalars(), strict=True):
        ev.id = new_id


@event.listens_for(Session, "after_transaction_create")
def _batch_savepoint_begins(session: Session, transaction: SessionTransaction) -> None:
    batch: _Batch | None = session.info.get(_BATCH)
    if batch is not None and transaction.nested:
        batch.marks[transaction] = len(batch.pending)


@event.listens_for(Session, "after_soft_rollback")
def _batch_savepoint_rolled_back(session: Session, previous: SessionTransaction) -> None:
    batch: _Batch | None = session.info.get(_BATCH)
    if batch is not None and (mark := batch.marks.pop(previous, None)) is not None:
        del batch.pending[mark:]


# ── stream positions ────────────────────────────────────────────────────────────────────
# An event gets its position right after the transaction that wrote it commits (an
# after-commit hook of the unit of work, running a short transaction of its own); the
# worker's sequencer poller (:func:`sequence_pending`) is the backstop for a process that
# died in between. Nothing on a read path writes.
_EMITTED = "loyalist.events.emitted"


def _sequence_after_commit(session: Session) -> None:
    uow = session.info.get("loyalist.uow")
    if isinstance(uow, UnitOfWork):
        if not uow.info.get(_EMITTED):
            uow.info[_EMITTED] = True
            engine = _engine(session)
            uow.after_commit(lambda: _sequence_quietly(engine))
    else:  # a bare session (no Database.transaction): the SQLAlchemy hook below
        session.info[_EMITTED] = True


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


# speed (issue 11, session 9): one daemon thread per process, the positioner, does the
# passes; a committing thread only asks and waits. Asking bumps a generation counter; a
# pass takes every engine asked for so far (and the generation it reached) and positions
# their events, so one pass serves every commit that arrived before it started, however
# many threads committed meanwhile, and no request thread ever loops over other requests'
# passes. The committing thread then waits (at most WAIT_S seconds) for a pass that started
# after its commit: its events have their positions when it returns, as before (tests and
# callers that read the stream right after a write rely on it); if the pass is late or
# failed it returns anyway, and the worker's sequencer poller is the backstop.
WAIT_S = 1.0
# Rounds of `sequence` (each one short transaction of at most `batch` events) a pass makes
# for one engine while it still finds full batches: a pass stays bounded.
_ROUNDS = 8


class _Positioner:
    """The process's positioner thread and the requests it serves (see above)."""

    def __init__(self) -> None:
        self._after_fork()

    def _after_fork(self) -> None:
        # also the fresh start of a forked child, which has none of its parent's threads
        self._cond = threading.Condition(threading.Lock())
        self._wanted: dict[int, Engine] = {}
        self._asked = 0  # generation of the latest request
        self._taken = 0  # generation the running (or last) pass took
        self._done = 0  # generation the last finished pass covered
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()  # the running thread's own stop signal
        self._pid = os.getpid()
        self.passes = 0  # passes made (read by the benchmarks and the tests)

    def ask(self, engine: Engine) -> int:
        """Ask for a pass over ``engine``; returns the generation to wait for."""
        with self._cond:
            if self._pid != os.getpid():  # forked without the hook below (belt and braces)
                self._after_fork()
            self._wanted[id(engine)] = engine
            self._asked += 1
            if self._thread is None or not self._thread.is_alive():
                self._stopped = threading.Event()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._stopped,),
                    name="loyalist-positioner",
                    daemon=True,
                )
                self._thread.start()
            self._cond.notify_all()
            return self._asked

    def wait(self, generation: int, timeout: float) -> bool:
        """Wait until a pass that started at or after ``generation`` ended. False on time-out."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= generation, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current pass; the next request starts a new one."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopped.set()
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def _run(self, stopped: threading.Event) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: stopped.is_set() or self._asked > self._taken)
                if stopped.is_set():
                    return
                generation, self._taken = self._asked, self._asked
                engines = list(self._wanted.values())
                self._wanted.clear()
            try:
                for engine in engines:
                    _pass(engine)
            finally:  # a pass that failed still ends: its waiters return, the backstop positions
                with self._cond:
                    self.passes += 1
                    self._done = max(self._done, generation)
                    self._cond.notify_all()


def _pass(engine: Engine, batch: int = 10_000) -> None:
    try:
        for _ in range(_ROUNDS):
            if sequence(engine, batch=batch) < batch:
                return
    except Exception:  # the events are committed; the sequencer poller positions them
        log.exception("could not give committed events their stream positions")


_positioner = _Positioner()
os.register_at_fork(after_in_child=lambda: _positioner._after_fork())
atexit.register(_positioner.stop, 1.0)


def _sequence_quietly(engine: Engine) -> None:
    """After a commit that wrote events: have them positioned, and wait (bounded) for it."""
    _positioner.wait(_positioner.ask(engine), WAIT_S)


def stop_positioner(timeout: float = 5.0) -> None:
    """Stop this process's positioner thread (at shutdown; a later commit starts it again)."""
    _positioner.stop(timeout)


@event.listens_for(Session, "after_commit")
def _position_after_commit(session: Session) -> None:
    if session.info.pop(_EMITTED, False):
        _sequence_quietly(_engine(session))


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_EMITTED, None)


def sequence(engine: Engine, *, batch: int = 10_000) -> int:
    """Give committed events their positions in a short transaction of their own."""
    # A bare connection, not an ORM session (speed, issue 11): three Core statements.
    with engine.begin() as conn:
        n = _assign(conn, batch)
        if n:
            wake.notify_on(conn)  # workers in other processes: LISTEN/NOTIFY on PostgreSQL
    if n:
        wake.notify()  # the embedded worker hands them to the consumers now
    return n


def sequence_pending(db: Database, *, limit: int = 10_000) -> int:
    """The worker's backstop: position events a crashed process committed but left
    without a position. Returns how many were positioned."""
    with db.engine.connect() as conn:  # a cheap look first: most ticks find nothing
        pending = conn.execute(
            select(OutboxEvent.id).where(OutboxEvent.position.is_(None)).limit(1)
        ).first()
    if pending is None:
        return 0
    return sequence(db.engine, batch=limit)


# Serialises assigners of stream positions on PostgreSQL (SQLite serialises all writers).
_STREAM_LOCK = 0x4C4F59414C  # "LOYAL"


def assign_positions(session: Session, batch: int = 10_000) -> int:
    """Give every committed event without a position the next ones, in id order.

    Runs in its own short transaction right after a commit that wrote events (and in the
    worker's sequencer as a backstop), never on a read path. Only visible (committed) events get a
    position, and one assigner at a time takes the next numbers, so positions only ever
    grow in the order events became visible: a cursor over positions never skips an event
    that commits after a later-written one.
    """
    return _assign(session.connection(), batch)


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def _assign(conn: Connection, batch: int) -> int:
    if conn.dialect.name != "sqlite":
        conn.execute(_ADVISORY_LOCK, {"k": _STREAM_LOCK})
    return int(conn.execute(_position_update(batch)).rowcount or 0)


@functools.lru_cache(maxsize=8)
def _position_update(batch: int) -> Update:
    """One statement (speed, issue 11): the head, the waiting events in id order and their
    new positions (head + 1, head + 2, ...), under the lock taken just before. Built once
    per batch size and process (SQLAlchemy reuses its cache key)."""
    table = cast(Table, OutboxEvent.__table__)
    placed = table.alias("placed")
    head = select(func.coalesce(func.max(placed.c.position), 0)).scalar_subquery()
    waiting = (
        select(
            table.c.id.label("id"),
            (head + func.row_number().over(order_by=table.c.id)).label("position"),
        )
        .where(table.c.position.is_(None))
        .order_by(table.c.id)
        .limit(batch)
        .subquery()
    )
    return update(table).where(table.c.id == waiting.c.id).values(position=waiting.c.position)


def list_events(
    session: Session,
    actor: Actor,
    *,
    after: int | None,
    limit: int,
    types: Sequence[str] = (),
    member_id: int | None = None,
) -> list[OutboxEvent]:
    q = (
        select(OutboxEvent)
        .where(OutboxEvent.position.is_not(None))
        .order_by(OutboxEvent.position)
        .limit(limit)
    )
    if after is not None:
        q = q.where(OutboxEvent.position > after)
    if types:
        q = q.where(OutboxEvent.type.in_(list(types)))
    if member_id is not None:
        q = q.where(OutboxEvent.member_id == member_id)
    if actor.scope_path != "/":
        # Events without an org path concern the whole programme (programme.published):
        # every key may read them, as every key may read GET /v1/programme.
        q = q.where(
            OutboxEvent.org_path.startswith(actor.scope_path) | OutboxEvent.org_path.is_(None)
        )
    return list(session.scalars(q))


def member_events(
    session: Session, actor: Actor, member_id: int, *, types: Sequence[str], limit: int
) -> list[OutboxEvent]:
    """A member's latest events of ``types``, newest first, whether or not the stream has
    given them a position yet (the console's member timeline; not a cursor)."""
    q = (
        select(OutboxEvent)
        .where(OutboxEvent.member_id == member_id, OutboxEvent.type.in_(list(types)))
        .order_by(OutboxEvent.id.desc())
        .limit(limit)
    )
    if actor.scope_path != "/":
        q = q.where(OutboxEvent.org_path.startswith(actor.scope_path))
    return list(session.scalars(q))


def as_dict(ev: OutboxEvent) -> dict[str, Any]:
    return {
        "id": ev.event_id,
        "sequence": ev.position,
        "type": ev.type,
        "schema_version": ev.schema_version,
        "occurred_at": ev.occurred_at.isoformat(),
        "member_id": ev.member_id,
        "data": ev.payload,
    }


def stream_state(session: Session) -> tuple[int, int]:
    """(head position, committed events without a position yet)."""
    head = int(session.scalar(select(func.coalesce(func.max(OutboxEvent.position), 0))) or 0)
    waiting = int(session.scalar(select(func.count()).where(OutboxEvent.position.is_(None))) or 0)
    return head, waiting


# --- Answers: the response schema /v1/events sends -------------------------------------


def page_view(
    session: Session,
    actor: Actor,
    *,
    after: int | None,
    limit: int,
    types: Sequence[str] = (),
    member_id: int | None = None,
    cursor: str | None = None,
) -> EventPage:
    """A page of events; an unknown type is refused (it would always answer nothing)."""
    unknown = sorted(set(types) - EVENT_TYPES)
    if unknown:
        raise ValidationFailed(
            f"Unknown event type: {', '.join(unknown)}.",
            [
                FieldError("type", f"unknown event type {t!r}", "unknown_event_type")
                for t in unknown
            ],
        )
    rows = list_events(session, actor, after=after, limit=limit, types=types, member_id=member_id)
    nxt = encode_cursor(rows[-1].position or 0) if rows else (cursor or None)
    return EventPage(items=[EventOut.model_validate(as_dict(e)) for e in rows], next_cursor=nxt)


def emit_many(
    session: Session, items: Sequence[tuple[str, dict[str, Any], int | None, str | None]]
) -> int:
    """:func:`emit` of many events (type, payload, member id, org path) in one multi-row
    INSERT, in the given order (bulk import). Answers how many."""
    if not items:
        return 0
    now = utcnow()
    rows = [
        _event_row(type_, payload, member_id, org_path, now)
        for type_, payload, member_id, org_path in items
    ]
    bulk.insert_rows(session, cast(Table, OutboxEvent.__table__), rows)
    _sequence_after_commit(session)
    return len(rows)
