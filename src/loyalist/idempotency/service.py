"""Idempotency keys: the same key and body get the same answer, once.

The record is inserted in the same transaction as the write it guards. Two concurrent
requests with one key: the unique constraint on (principal, key) makes the second wait for
the first (PostgreSQL) or run after it (SQLite's single writer), then it finds the stored
answer and replays it. A crash before commit leaves neither the write nor the record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.errors import FieldError, IdempotencyKeyReused, ValidationFailed
from loyalist.kit import crypto
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database, is_sqlite
from loyalist.kit.hashing import sha256_hex
from loyalist.models import IdempotencyRecord

MAX_KEY_LENGTH = 255
#: How long a stored answer is kept: a request replayed with its key within this window gets
#: the first answer again; after it the key is forgotten (the pruning job deletes it).
RETENTION = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


# Stored answers may hold personal data (a member's phone): sealed at rest (issue 13).
_PURPOSE = "idempotency.response"


def _seal(body: dict[str, Any]) -> dict[str, Any]:
    try:  # orjson: the same JSON text without blanks, several times faster (issue 11)
        text = orjson.dumps(body).decode()
    except TypeError:  # an integer beyond 64 bits
        text = json.dumps(body, ensure_ascii=False)
    return {"sealed": crypto.encrypt(_PURPOSE, text)}


def _open(stored: dict[str, Any]) -> dict[str, Any]:
    sealed = stored.get("sealed") if len(stored) == 1 else None
    if not isinstance(sealed, str):
        return stored  # stored before answers were sealed
    body: dict[str, Any] = json.loads(crypto.decrypt(_PURPOSE, sealed))
    return body


def fingerprint(method: str, path: str, body: bytes) -> str:
    return sha256_hex(method.encode() + b" " + path.encode() + b"\n" + body)


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key is not valid.",
            [FieldError("Idempotency-Key", "1 to 255 printable characters", "invalid")],
        )


def _find(session: Session, principal: str, key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
        )
    )


def _claim_statement(insert: Any) -> Any:
    table = cast(Table, IdempotencyRecord.__table__)
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["principal", "key"])
        .returning(table.c.id)
    )


# speed (issue 11): the claim and the answer's update are Core statements built once per
# process with bound parameters, run on the session's connection (no ORM layer)
_CLAIM_SQLITE = _claim_statement(sqlite_insert)
_CLAIM = _claim_statement(pg_insert)
_ANSWER = (
    update(cast(Table, IdempotencyRecord.__table__))
    .where(IdempotencyRecord.__table__.c.id == bindparam("rid"))
    .values(status_code=bindparam("status_code"), response=bindparam("response"))
)


def _claim(
    session: Session, principal: str, key: str, method: str, path: str, fp: str
) -> int | None:
    """Insert the key's record; None when it already exists (nothing inserted)."""
    stmt = _CLAIM_SQLITE if is_sqlite(session) else _CLAIM
    row = {
        "principal": principal,
        "key": key,
        "method": method,
        "path": path[:500],
        "fingerprint": fp,
        "status_code": 0,
        "response": {},
        "created_at": utcnow(),
    }
    rid = session.connection().execute(stmt, row).scalar()
    return None if rid is None else int(rid)


def _replay(rec: IdempotencyRecord, fp: str) -> Answer:
    if rec.fingerprint != fp:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request.",
            [FieldError("Idempotency-Key", "reused with another body or path", "reused")],
        )
    return Answer(rec.status_code, _open(rec.response), replayed=True)


def run_idempotent(
    db: Database,
    *,
    principal: str,
    key: str | None,
    method: str,
    path: str,
    body: bytes,
    work: Callable[[Session], Answer],
    first: Callable[[Session], None] | None = None,
) -> Answer:
    """Run ``work`` in one transaction, guarded by ``key`` when one is given.

    ``first`` (e.g. the check that the caller's API key is not revoked) runs in the same
    transaction before anything else, a replay included: when it raises, nothing is
    written and nothing is replayed."""
    if key is None:
        if first is None:
            return db.run(work)

        def checked(session: Session) -> Answer:
            first(session)
            return work(session)

        return db.run(checked)
    check_key(key)
    fp = fingerprint(method, path, body)

    def guarded(session: Session) -> Answer:
        if first is not None:
            first(session)
        # Claim the key before doing the work: a concurrent request with the same key
        # blocks on the unique index (PostgreSQL) until this transaction ends, then finds
        # the stored answer, so it can neither run the work again nor answer differently.
        # One statement (speed, issue 11): insert unless the key is there, else replay it.
        for _attempt in range(3):
            rid = _claim(session, principal, key, method, path, fp)
            if rid is not None:
                break
            existing = _find(session, principal, key)
            if existing is not None:
                return _replay(existing, fp)
            # purged between the two statements: claim it again
        else:
            raise RuntimeError(f"could not claim Idempotency-Key {key!r}")
        answer = work(session)
        session.flush()  # the work's own rows first, as before (constraint errors here)
        session.connection().execute(
            _ANSWER, {"rid": rid, "status_code": answer.status, "response": _seal(answer.body)}
        )
        return answer

    for _ in range(3):
        try:
            return db.run(guarded)
        except IntegrityError:
            # Either the same key committed concurrently (replay it), or the work hit a
            # unique constraint of its own: then the stored answer, if any, decides.
            with db.transaction() as session:
                if first is not None:
                    first(session)
                existing = _find(session, principal, key)
                if existing is not None:
                    return _replay(existing, fp)
            raise
    raise AssertionError("unreachable")


def prune(session: Session, now: datetime, *, limit: int, keep: timedelta = RETENTION) -> int:
    """Delete up to ``limit`` records older than ``keep`` (oldest first); how many went.
    A record inside the window is never touched, so a replay within it stays idempotent."""
    ids = list(
        session.scalars(
            select(IdempotencyRecord.id)
            .where(IdempotencyRecord.created_at < now - keep)
            .order_by(IdempotencyRecord.created_at, IdempotencyRecord.id)
            .limit(limit)
        )
    )
    if ids:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
    return len(ids)
