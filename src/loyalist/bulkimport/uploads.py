"""Bulk import from the console (issue 13 item 5): the uploaded file is validated in the
request (nothing written), kept in the data directory by its checksum, and imported by a
durable background job, ``import.rows``, one slice of rows per job.

Each job locks the file's :class:`~loyalist.models.ImportBatch`, reads the file again,
validates the next ``JOB_ROWS`` data rows against the database as it is now (the whole
file was validated when it was uploaded: duplicates inside the file cannot appear since),
writes them with :func:`service.write_rows` — which moves the batch's cursor in the same
transaction — and queues the job for the next slice. A job whose slice is already written
(a repeated confirmation, a retry after its transaction committed) finds the cursor moved
and does nothing; a killed worker's job is claimed again and resumes at the committed
cursor. The rows are written as the CLI writes them, so the same file twice is one batch
and changes nothing the second time.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.audit import service as audit
from loyalist.bulkimport import service
from loyalist.bulkimport.domain import KINDS, checksum, read_rows
from loyalist.config import get_settings
from loyalist.errors import FieldError, LoyalistError, NotFound, ValidationFailed
from loyalist.jobs.queue import enqueue
from loyalist.kit.actor import Actor
from loyalist.models import ImportBatch, Job
from loyalist.staff import service as staff

JOB_KIND = "import.rows"
JOB_ROWS = 1_000  # data rows per job (one transaction each)
SUFFIXES = (".csv", ".xlsx")
_CHECKSUM = re.compile(r"^[0-9a-f]{64}$")


class RowsChanged(LoyalistError):
    """A row that was valid at the upload is not any more (the database changed since)."""

    status = 409
    code = "import_rows_changed"
    title = "Rows of the file are no longer valid"


def upload_dir() -> Path:
    return Path(get_settings().import_dir)


def suffix_of(filename: str) -> str | None:
    """``.csv`` or ``.xlsx`` (by the name's ending, any case), else None."""
    low = filename.strip().lower()
    return next((s for s in SUFFIXES if low.endswith(s)), None)


def path_for(digest: str, suffix: str) -> Path:
    if not _CHECKSUM.match(digest) or suffix not in SUFFIXES:
        raise ValidationFailed(
            "Unknown uploaded file.", [FieldError("checksum", "not an uploaded file")]
        )
    return upload_dir() / f"{digest}{suffix}"


def rows_path(digest: str, suffix: str) -> Path:
    """The file's rows, read once: a JSON line with the header, then one JSON line
    ``[line number, {column: cell}]`` per data row (blank lines left out), so that a job
    reads its slice without parsing the whole CSV or workbook again."""
    path = path_for(digest, suffix)
    return path.with_name(path.name + ".rows.jsonl")


def _write(path: Path, chunks: Iterator[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def keep(data: bytes, suffix: str) -> str:
    """Store a validated file and its rows under its checksum (atomically; the same file
    twice is one file) and return the checksum. A file kept already is touched: its age
    (for :func:`prune`) counts from its latest upload."""
    digest = checksum(data)
    path, rows_file = path_for(digest, suffix), rows_path(digest, suffix)
    if path.exists() and rows_file.exists():
        try:
            os.utime(rows_file)
            os.utime(path)
        except FileNotFoundError:  # pruned meanwhile: kept again below
            pass
        else:
            return digest
    header, rows = read_rows(data, f"upload{suffix}")

    def lines() -> Iterator[bytes]:
        yield json.dumps(header, ensure_ascii=False).encode() + b"\n"
        for n, cells in enumerate(rows, start=2):
            if cells:
                yield json.dumps([n, cells], ensure_ascii=False).encode() + b"\n"

    _write(rows_file, lines())
    _write(path, iter([data]))
    return digest


def forget(digest: str, suffix: str) -> None:
    path_for(digest, suffix).unlink(missing_ok=True)
    rows_path(digest, suffix).unlink(missing_ok=True)


def _open_rows(digest: str, suffix: str) -> IO[bytes]:
    try:
        return rows_path(digest, suffix).open("rb")
    except FileNotFoundError as exc:
        raise NotFound("The uploaded file is not kept any more; upload it again.") from exc


def count_rows(digest: str, suffix: str) -> int:
    """The kept file's data rows (blank lines not counted)."""
    with _open_rows(digest, suffix) as fh:
        return sum(1 for _ in fh) - 1


def read_slice(
    digest: str, suffix: str, at: int, count: int
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the data rows ``at`` … ``at + count`` with their line numbers."""
    with _open_rows(digest, suffix) as fh:
        header = [str(h) for h in json.loads(fh.readline())]
        part = [json.loads(line) for line in itertools.islice(fh, at, at + count)]
    return header, [(int(n), {str(k): str(v) for k, v in cells.items()}) for n, cells in part]


def load(digest: str, suffix: str) -> bytes:
    """The kept file's bytes (404 when it is not there or not the file it was)."""
    path = path_for(digest, suffix)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound("The uploaded file is not kept any more; upload it again.") from exc
    if checksum(data) != digest:
        raise NotFound("The uploaded file changed on disk; upload it again.")
    return data


@dataclass(frozen=True)
class Started:
    batch: ImportBatch
    queued: bool  # False: the file was imported already (nothing to do)


def start(
    session: Session,
    actor: Actor,
    login: str,
    kind: str,
    digest: str,
    suffix: str,
    filename: str,
    *,
    programme_version: int | None = None,
) -> Started:
    """Open (or find) the file's batch and queue the job that writes its next rows.
    ``programme_version`` (orders): stored with the batch, the jobs' orders earn under it."""
    if kind not in KINDS:
        raise ValidationFailed("Unknown kind.", [FieldError("kind", ", ".join(KINDS))])
    found = session.scalar(
        select(ImportBatch).where(ImportBatch.kind == kind, ImportBatch.checksum == digest)
    )
    if found is not None and found.status == "done":
        total = found.total_rows  # imported (its file is gone): open_batch only checks
    else:
        load(digest, suffix)  # there, and still the file that was validated
        total = count_rows(digest, suffix)
    batch = service.open_batch(
        session, actor, kind, digest, filename, total, programme_version=programme_version
    )
    if batch.status == "done":
        return Started(batch, False)
    payload = {"batch": batch.id, "at": batch.cursor, "suffix": suffix, "staff": login}
    # Each confirmation queues a job (a repeated one finds its slice written and does
    # nothing); the key names the batch so that the page finds the batch's latest job.
    key = f"import:{batch.id}:{batch.cursor}:{secrets.token_hex(8)}"
    enqueue(session, JOB_KIND, payload, dedupe_key=key)
    audit.record(
        session,
        actor,
        "import.queue",
        "import_batch",
        batch.id,
        org_path="/",
        after={
            "kind": kind,
            "filename": batch.filename,
            "rows": total,
            "done_rows": batch.cursor,
            **(
                {"programme_version": batch.programme_version}
                if batch.programme_version is not None
                else {}
            ),
        },
    )
    return Started(batch, True)


def _at_their_lines(part: list[tuple[int, dict[str, str]]]) -> list[dict[str, str]]:
    """Rows at their own line numbers: the other lines are blank in the list given to
    :func:`service.validate` (which numbers rows by their place in the list)."""
    if not part:
        return []
    blank: dict[str, str] = {}
    padded = [blank] * (part[-1][0] - 1)
    for n, cells in part:
        padded[n - 2] = cells
    return padded


def step(session: Session, payload: dict[str, Any]) -> None:
    """One job: write the slice of rows at the batch's cursor, queue the next slice."""
    batch = service.lock_batch(session, int(payload["batch"]))
    at = int(payload["at"])
    if batch.status == "done" or batch.cursor != at:
        return  # done, or this slice was written by an earlier job
    login = str(payload["staff"])
    actor = staff.actor_for(session, staff.get_by_login(session, login))
    suffix = str(payload["suffix"])
    header, part = read_slice(batch.checksum, suffix, at, JOB_ROWS)
    if part:
        v = service.validate(session, actor, batch.kind, header, _at_their_lines(part))
        if not v.ok:
            e = v.errors[0]
            raise RowsChanged(
                f"row {e.row}, {e.field}: {e.problem}",
                [FieldError(f"row {x.row}.{x.field}", x.problem, x.code) for x in v.errors[:50]],
            )
        service.write_rows(session, actor, batch, v.rows)
    elif batch.cursor < batch.total_rows:
        raise RowsChanged("the file has fewer rows than its import counted")
    if batch.status != "done":
        nxt = {**payload, "at": batch.cursor}
        enqueue(session, JOB_KIND, nxt, dedupe_key=f"import:{batch.id}:{batch.cursor}")
    else:  # imported: the file is not needed any more (should this transaction not commit,
        # the retry finds no file and the page asks for the same file again, which resumes)
        forget(batch.checksum, suffix)


# --- clean-up: uploads checked but never confirmed ---------------------------------------

_KEPT = re.compile(r"^([0-9a-f]{64})\.(?:csv|xlsx)(?:\.rows\.jsonl)?$")
_TEMP = ".upload-"  # a temporary file of :func:`_write` left by a killed process
_LIVE = ("queued", "running", "failed")  # a job that will run (again)


def max_age() -> timedelta | None:
    """How long an unconfirmed upload is kept (``LOYALIST_IMPORT_UPLOAD_MAX_AGE_HOURS``;
    0: for ever)."""
    hours = get_settings().import_upload_max_age_hours
    return timedelta(hours=hours) if hours > 0 else None


def in_use(session: Session) -> set[str]:
    """The checksums of the files an import job will still read: the batches with a
    queued, running or failed (to be retried) ``import.rows`` job."""
    keys = session.scalars(
        select(Job.dedupe_key).where(Job.kind == JOB_KIND, Job.state.in_(_LIVE))
    ).all()
    ids = {
        int(k.split(":")[1]) for k in keys if k and k.count(":") >= 2 and k.split(":")[1].isdigit()
    }
    if not ids:
        return set()
    q = select(ImportBatch.checksum).where(ImportBatch.id.in_(sorted(ids)))
    return set(session.scalars(q))


def prune(session: Session, now: datetime) -> list[str]:
    """Remove the kept files older than :func:`max_age` (by their modification time)
    that no import job will read: uploads checked but never confirmed, files of imports
    that stopped (the page asks for the same file again, which keeps it anew), temporary
    files of an interrupted upload. Returns the names removed; running it again removes
    nothing more (idempotent)."""
    age = max_age()
    where = upload_dir()
    if age is None or not where.is_dir():
        return []
    cutoff = now - age
    needed = in_use(session)
    removed: list[str] = []
    for path in sorted(where.iterdir()):
        m = _KEPT.match(path.name)
        if m is None and not path.name.startswith(_TEMP):
            continue  # not ours
        if m is not None and m.group(1) in needed:
            continue
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except FileNotFoundError:
            continue
        if modified >= cutoff:  # strictly older than the age goes
            continue
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


# --- reading, for the page ------------------------------------------------------------------


@dataclass(frozen=True)
class BatchView:
    batch: ImportBatch
    job_state: str | None  # the state of its latest job (None: no job, e.g. the CLI's)
    job_error: str | None


def recent(session: Session, limit: int = 20) -> list[ImportBatch]:
    return list(session.scalars(select(ImportBatch).order_by(ImportBatch.id.desc()).limit(limit)))


def view(session: Session, batch_id: int) -> BatchView:
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise NotFound(f"No import {batch_id}.")
    job = session.scalars(
        select(Job)
        .where(Job.kind == JOB_KIND, Job.dedupe_key.like(f"import:{batch_id}:%"))
        .order_by(Job.id.desc())
        .limit(1)
    ).first()
    if job is None:
        return BatchView(batch, None, None)
    return BatchView(batch, job.state, job.last_error)
