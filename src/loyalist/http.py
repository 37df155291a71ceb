"""HTTP glue shared by the feature endpoints: database, caller, idempotent writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import service as access
from loyalist.errors import Unauthorized
from loyalist.idempotency.service import Answer, run_idempotent
from loyalist.kit.actor import Actor
from loyalist.kit.db import MAX_INT4, MAX_INT8, Database
from loyalist.kit.hashing import sha256_hex
from loyalist.kit.uow import acting_as

_AUTH_TTL_S = 10.0
_auth_cache: dict[str, tuple[float, Actor]] = {}
_auth_lock = threading.Lock()


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _presented_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def _authenticate(db: Database, key: str) -> Actor:
    """The key's actor. The hash check and scope lookup are cached for a few seconds per
    process, but whether the key is revoked is read from the database on every request
    (one indexed primary-key read), so a revocation holds at once in every process."""
    digest = sha256_hex(key)
    now = time.monotonic()
    with _auth_lock:
        hit = _auth_cache.get(digest)
    if hit is not None and hit[0] > now:
        actor = hit[1]
        with db.transaction() as s:
            access.check_not_revoked(s, actor)
        return actor
    with db.transaction() as s:
        actor = access.authenticate(s, key)
    with _auth_lock:
        if len(_auth_cache) > 10_000:
            _auth_cache.clear()
        _auth_cache[digest] = (now + _AUTH_TTL_S, actor)
    return actor


def forget_cached_keys() -> None:
    with _auth_lock:
        _auth_cache.clear()


async def current_actor(request: Request) -> Actor:
    key = _presented_key(request)
    if not key:
        raise Unauthorized("A valid API key is required (Authorization: Bearer lk_…).")
    db = get_db(request)
    return await run_in_threadpool(_authenticate, db, key)


DB = Annotated[Database, Depends(get_db)]
Caller = Annotated[Actor, Depends(current_actor)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
# Ids in paths and filters, bounded by their columns (members: 32 bits; orders, redemptions:
# 64 bits) so an absurd id is a 422 on its field rather than a database error.
MemberId = Annotated[int, Path(ge=1, le=MAX_INT4)]
RecordId = Annotated[int, Path(ge=1, le=MAX_INT8)]
MemberFilterId = Annotated[int | None, Query(ge=1, le=MAX_INT4)]


async def read(db: Database, fn: Callable[[Session], Any], actor: Actor | None = None) -> Any:
    """Run ``fn`` in one transaction (its unit of work names ``actor`` when given)."""
    return await run_in_threadpool(lambda: db.run(fn, actor=actor))


async def write(
    request: Request,
    db: Database,
    actor: Actor,
    key: str | None,
    work: Callable[[Session], tuple[int, dict[str, Any]]],
) -> JSONResponse:
    """Run a write once per Idempotency-Key in one transaction; answer only after commit."""
    access.require_write(actor)
    body = await request.body()

    def unit(session: Session) -> Answer:
        status, payload = work(session)
        return Answer(status, payload)

    def call() -> Answer:
        with acting_as(actor):  # the unit of work knows the caller (uow_of(session).actor)
            return run_idempotent(
                db,
                principal=actor.principal,
                key=key,
                method=request.method,
                path=request.url.path,
                body=body,
                work=unit,
            )

    answer = await run_in_threadpool(call)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)
