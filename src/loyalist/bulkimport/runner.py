"""Running an import: validate the whole file in one read-only transaction, then write it
in batches of rows, one transaction each, the batch's cursor committed with its rows (so a
killed process resumes after the last committed batch; a file already imported changes
nothing). Used by the CLI and the console (there in a background thread)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from loyalist.bulkimport import service
from loyalist.bulkimport.domain import KINDS, FileUnreadable, RowError, checksum, read_rows
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database

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
    programme_version: int | None = None,
) -> Outcome:
    """Validate, then import (or resume) the file. A file with any bad row writes nothing.
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
    written = 0
    cursor = batch.cursor
    if progress:
        progress(cursor, len(v.rows))
    while cursor < len(v.rows):

        def step(s: Session, at: int = cursor) -> tuple[int, int, int, str]:
            b = service.lock_batch(s, batch.id)
            if b.cursor != at:  # another process moved it: continue from there
                return b.cursor, b.created, b.unchanged, b.status
            service.write_rows(s, actor, b, v.rows[at : at + batch_rows])
            return b.cursor, b.created, b.unchanged, b.status

        before = cursor
        cursor = db.run(step)[0]
        written += max(cursor - before, 0)
        if progress:
            progress(cursor, len(v.rows))
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
