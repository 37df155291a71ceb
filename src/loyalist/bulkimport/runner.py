"""Running an import: validate the whole file in one read-only transaction, then write it
in batches of rows, one transaction each, the batch's cursor committed with its rows (so a
killed process resumes after the last committed batch; a file already imported changes
nothing). Used by the CLI and the console (there in a background thread)."""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from loyalist.bulkimport import service
from loyalist.bulkimport.domain import KINDS, FileUnreadable, RowError, checksum, read_rows
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database
from loyalist.models import ImportBatch

Progress = Callable[[int, int], None]
BATCH_ROWS = 2_000


@dataclass
class Outcome:
    kind: str
    status: str  # invalid | done | already_done
    total: int
    errors: list[RowError] = field(default_factory=list)
    batch_id: int | None = None
    created: int = 0
    unchanged: int = 0
    written_now: int = 0
    seconds: float = 0.0
    programme_version: int | None = None  # orders: the version they earned under (None: at date)


def check(db: Database, actor: Actor, kind: str, data: bytes, filename: str) -> service.Validation:
    """The validation report of a file (nothing written)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    try:
        header, rows = read_rows(data, filename)
    except FileUnreadable as exc:
        return service.Validation(kind, 0, errors=[RowError(1, "file", str(exc), "unreadable")])
    return db.run(lambda s: service.validate(s, actor, kind, header, rows), read_only=True)


def run(
    db: Database,
    actor: Actor,
    kind: str,
    data: bytes,
    filename: str,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
    validation: service.Validation | None = None,
    processes: int = 1,
    programme_version: int | None = None,
) -> Outcome:
    """Validate, then import (or resume) the file. A file with any bad row writes nothing.
    Orders may be written by ``processes`` worker processes (see :func:`_run_parts`).
    ``programme_version`` (orders): every order earns under that published version instead
    of the version in force at its date; an unknown version raises ``ValidationFailed``
    before anything is written."""
    t0 = time.perf_counter()
    if programme_version is not None:
        db.run(
            lambda s: service.check_programme_version(s, kind, programme_version), read_only=True
        )
    v = validation or check(db, actor, kind, data, filename)
    if not v.ok:
        return Outcome(kind, "invalid", v.total, v.errors, seconds=time.perf_counter() - t0)
    digest = checksum(data)
    batch = db.run(
        lambda s: service.open_batch(
            s, actor, kind, digest, filename, len(v.rows), programme_version=programme_version
        )
    )
    if batch.status == "done":
        return Outcome(
            kind,
            "already_done",
            v.total,
            batch_id=batch.id,
            created=batch.created,
            unchanged=batch.unchanged,
            seconds=time.perf_counter() - t0,
            programme_version=batch.programme_version,
        )
    # speed: the validated rows live until the end; out of the garbage collector's sight
    # (gc.freeze), its full passes no longer walk every one of them again and again (and
    # forked writers share their pages instead of copying them)
    gc.collect()
    gc.freeze()
    try:
        if processes > 1 and kind == "orders":
            written = _run_parts(db, actor, batch, v.rows, batch_rows, progress, processes)
        else:
            written = _write(db, actor, batch.id, batch.cursor, v.rows, batch_rows, progress)
    finally:
        gc.unfreeze()
    final = db.run(lambda s: service.lock_batch(s, batch.id), read_only=True)
    return Outcome(
        kind,
        "done",
        v.total,
        batch_id=batch.id,
        created=final.created,
        unchanged=final.unchanged,
        written_now=written,
        seconds=time.perf_counter() - t0,
        programme_version=final.programme_version,
    )


# After this many rows written by one process, and again at each doubling, the import
# refreshes PostgreSQL's statistics of the tables it fills (see service.refresh_statistics).
ANALYZE_FIRST = 20_000


def _write(
    db: Database,
    actor: Actor,
    batch_id: int,
    cursor: int,
    rows: Sequence[service.Prepared],
    batch_rows: int,
    progress: Progress | None,
) -> int:
    """Write ``rows`` from ``cursor`` on, ``batch_rows`` per transaction, each committing the
    batch's cursor with its rows. Answers how many rows this call wrote."""
    written = 0
    analyze_at = ANALYZE_FIRST
    if progress:
        progress(cursor, len(rows))
    while cursor < len(rows):

        def step(s: Session, at: int = cursor) -> tuple[int, int, int, str]:
            b = service.lock_batch(s, batch_id)
            if b.cursor != at:  # another process moved it: continue from there
                return b.cursor, b.created, b.unchanged, b.status
            service.write_rows(s, actor, b, rows[at : at + batch_rows])
            return b.cursor, b.created, b.unchanged, b.status

        before = cursor
        cursor = db.run(step)[0]
        written += max(cursor - before, 0)
        if written >= analyze_at:  # the tables grew a lot: fresh planner statistics
            db.run(service.refresh_statistics)
            analyze_at *= 2
        if progress:
            progress(cursor, len(rows))
    return written


def _run_parts(
    db: Database,
    actor: Actor,
    batch: ImportBatch,
    rows: list[service.Prepared],
    batch_rows: int,
    progress: Progress | None,
    processes: int,
) -> int:
    """Write the rows in ``processes`` worker processes, each its own part of the file (all
    the rows of an account in one part: no two processes lock the same account), each part
    a batch with its own committed cursor (a killed run resumes every part where it
    stopped); the file's batch is marked done when every part is."""
    where = db.run(lambda s: service.partition(s, batch.kind, rows, processes), read_only=True)
    parts: list[list[service.Prepared]] = [[] for _ in range(processes)]
    for p, part in zip(rows, where, strict=True):
        parts[part].append(p)

    def open_part(s: Session, k: int) -> ImportBatch:
        return service.open_part(s, actor, batch, k, processes, len(parts[k]))

    opened = [db.run(functools.partial(open_part, k=k)) for k in range(processes)]
    ctx = multiprocessing.get_context("fork")
    done: Any = ctx.Array("q", [b.cursor for b in opened])  # each part's cursor, shared
    before = sum(b.cursor for b in opened)
    db.dispose()  # the children open their own connections
    procs = [
        ctx.Process(
            target=_part_main,
            args=(db.url, actor, opened[k].id, opened[k].cursor, parts[k], batch_rows, done, k),
            name=f"import part {k + 1}/{processes}",
        )
        for k in range(processes)
        if opened[k].status != "done" and opened[k].cursor < len(parts[k])
    ]
    for pr in procs:
        pr.start()
    try:
        while any(pr.is_alive() for pr in procs):
            for pr in procs:
                pr.join(timeout=0.5 / len(procs))
            if progress:
                progress(int(sum(done[:])), len(rows))
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.terminate()
            pr.join()
    failed = [pr.name for pr in procs if pr.exitcode != 0]
    if failed:
        raise RuntimeError(f"{', '.join(failed)} failed (run the import again to resume)")
    db.run(lambda s: service.finish_parts(s, actor, batch.id, [b.id for b in opened]))
    if progress:
        progress(len(rows), len(rows))
    return int(sum(done[:])) - before


def _part_main(
    url: str,
    actor: Actor,
    batch_id: int,
    cursor: int,
    rows: list[service.Prepared],
    batch_rows: int,
    done: Any,
    k: int,
) -> None:
    parent = os.getppid()

    def progress(at: int, _total: int) -> None:
        done[k] = at
        if os.getppid() != parent:  # the importing process died: stop (a re-run resumes)
            raise SystemExit(3)

    db = Database(url)
    try:
        _write(db, actor, batch_id, cursor, rows, batch_rows, progress)
    finally:
        db.dispose()
