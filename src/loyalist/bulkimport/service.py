"""Bulk import rules: validate a whole file row by row, then write it batch by batch
through the real services (members: ``member.service.create`` — encryption and blind
indexes included —; orders: ``order.service.record_many`` — the rules of ``record`` (the
same pure earn engine, caps, tiers), written set-based, a batch of rows at once —;
carried balances: ``ledger.service.credit`` as lots with their original earn date and
expiry). Every function takes the caller's session and never commits (:mod:`runner` owns
the transactions: one per batch of rows, with the batch's committed cursor)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from loyalist.access.permissions import MEMBER_WRITE, ORDER_WRITE, POINTS_ADJUST, require
from loyalist.audit import service as audit
from loyalist.bulkimport.domain import (
    COLUMNS,
    RowError,
    header_errors,
    parse_instant,
    parse_int,
)
from loyalist.errors import Conflict, FieldError, LoyalistError, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.db import is_sqlite
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.domain import InvalidIdentity, normalise_identity
from loyalist.member.schemas import MemberCreate
from loyalist.models import ImportBatch, LedgerEntry, Member, PointsAccountMember
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate
from loyalist.org import service as org
from loyalist.programme import service as programmes

#: Tolerated clock skew for "not in the future" (the order service's rule).
_SKEW = timedelta(minutes=5)
_PERMISSION = {"members": MEMBER_WRITE, "orders": ORDER_WRITE, "points": POINTS_ADJUST}


@dataclass
class Prepared:
    """A validated row, ready to write: its line number, its cells, resolved references."""

    row: int
    cells: dict[str, str]
    member_id: int | None = None
    org_path: str = "/"


@dataclass
class Validation:
    kind: str
    total: int
    rows: list[Prepared] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _pydantic_errors(row: int, exc: ValidationError, rename: dict[str, str]) -> list[RowError]:
    out: list[RowError] = []
    for e in exc.errors():
        loc = [str(p) for p in e["loc"]]
        first = loc[0] if loc else "row"
        name = rename.get(".".join(loc), rename.get(first, first))
        msg = str(e["msg"]).removeprefix("Value error, ")
        out.append(RowError(row, name, msg, "invalid"))
    return out


def _blank(v: str | None) -> str | None:
    return v if v else None


def _dupes(rows: Sequence[tuple[int, str]], column: str) -> list[RowError]:
    counts = Counter(v for _r, v in rows if v)
    first: dict[str, int] = {}
    errors: list[RowError] = []
    for r, v in rows:
        if not v or counts[v] < 2:
            continue
        if v in first:
            errors.append(
                RowError(r, column, f"same {column} as row {first[v]}", "duplicate_in_file")
            )
        else:
            first[v] = r
    return errors


def _members_by_external(session: Session, ids: set[str]) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    todo = sorted(ids)
    for i in range(0, len(todo), 500):
        q = select(Member.external_id, Member.id, Member.org_path).where(
            Member.external_id.in_(todo[i : i + 500])
        )
        for ext, mid, path in session.execute(q):
            if ext is not None:
                found[ext] = (mid, path)
    return found


def _member_create(cells: dict[str, str]) -> MemberCreate:
    tags = [t.strip() for t in cells.get("tags", "").replace("|", ";").split(";") if t.strip()]
    return MemberCreate(
        external_id=cells.get("external_id") or None,
        phone=_blank(cells.get("phone")),
        email=_blank(cells.get("email")),
        name=_blank(cells.get("name")),
        birthday=_blank(cells.get("birthday")),  # type: ignore[arg-type]
        gender=_blank(cells.get("gender")),  # type: ignore[arg-type]
        city=_blank(cells.get("city")),
        home_store=_blank(cells.get("home_store")),
        join_channel=cells.get("join_channel") or "import",
        tags=tags,
    )


def _order_create(cells: dict[str, str], member_id: int | None) -> OrderCreate:
    amount = parse_int(cells["amount_paid_minor"])
    return OrderCreate(
        external_id=cells["external_id"],
        member_id=member_id,
        store=cells["store"],
        channel=cells.get("channel") or "import",
        occurred_at=cells["occurred_at"],  # type: ignore[arg-type]
        currency=cells.get("currency") or "CNY",
        amount_paid_minor=amount,
        lines=[
            {  # type: ignore[list-item]
                "sku": cells.get("sku") or "IMPORT",
                "category": cells.get("category") or None,
                "quantity": 1,
                "unit_price_minor": amount,
            }
        ],
    )


def validate(
    session: Session, actor: Actor, kind: str, header: list[str], rows: list[dict[str, str]]
) -> Validation:
    """Every problem of every row (nothing is written): the file imports only without any."""
    require(actor, _PERMISSION[kind])
    v = Validation(kind, sum(1 for r in rows if r))
    v.errors = header_errors(kind, header)
    if v.errors:
        return v
    numbered = [(n, cells) for n, cells in enumerate(rows, start=2) if cells]
    if not numbered:
        v.errors.append(RowError(2, "row", "the file has no data rows", "empty"))
        return v
    for n, cells in numbered:
        for name, required in COLUMNS[kind]:
            if required and not cells.get(name):
                v.errors.append(RowError(n, name, "required", "missing"))
    if kind != "orders":  # orders: unique per store (below)
        v.errors += _dupes([(n, c.get("external_id", "")) for n, c in numbered], "external_id")
    {"members": _validate_members, "orders": _validate_orders, "points": _validate_points}[kind](
        session, actor, numbered, v
    )
    v.errors.sort(key=lambda e: (e.row, e.field))
    if v.errors:
        v.rows = []
    return v


def _validate_members(
    session: Session, actor: Actor, numbered: list[tuple[int, dict[str, str]]], v: Validation
) -> None:
    stores: dict[str, str | None] = {}
    phones: list[tuple[int, str]] = []
    emails: list[tuple[int, str]] = []
    for n, cells in numbered:
        try:
            data = _member_create(cells)
        except ValidationError as exc:
            v.errors += _pydantic_errors(n, exc, {"identities": "phone"})
            continue
        bad = False
        for kind in ("phone", "email"):
            value = getattr(data, kind)
            if not value:
                continue
            try:
                norm = normalise_identity(kind, value)
            except InvalidIdentity as exc:
                v.errors.append(RowError(n, kind, str(exc), "invalid"))
                bad = True
                continue
            (phones if kind == "phone" else emails).append((n, norm))
            holder = members.find_by_identity(session, kind, norm)
            if holder is not None and holder.external_id != data.external_id:
                v.errors.append(RowError(n, kind, "already registered to another member", "taken"))
                bad = True
        code = data.home_store
        if code and code not in stores:
            try:
                org.open_store_in_scope(session, actor, code, field="home_store")
                stores[code] = None
            except LoyalistError as exc:
                stores[code] = exc.errors[0].message if exc.errors else exc.detail
        if code and stores.get(code):
            v.errors.append(RowError(n, "home_store", str(stores[code]), "unknown_store"))
            bad = True
        if not bad:
            v.rows.append(Prepared(n, cells))
    v.errors += _dupes(phones, "phone") + _dupes(emails, "email")


def _validate_orders(
    session: Session, actor: Actor, numbered: list[tuple[int, dict[str, str]]], v: Validation
) -> None:
    now = utcnow()
    _version, programme = programmes.active(session)
    backdate = programme.orders.max_backdate_days
    known = _members_by_external(session, {c["member"] for _n, c in numbered if c.get("member")})
    stores: dict[str, str | None] = {}
    keys: list[tuple[int, str]] = []
    for n, cells in numbered:
        if not (cells.get("external_id") and cells.get("store") and cells.get("occurred_at")):
            continue  # reported as missing
        keys.append((n, f"{cells['store']}\x00{cells['external_id']}"))
        ref = cells.get("member") or ""
        member = known.get(ref) if ref else None
        if ref and member is None:
            v.errors.append(RowError(n, "member", "unknown member", "unknown_member"))
        try:
            data = _order_create(cells, member[0] if member else None)
        except ValueError as exc:  # ValidationError is a ValueError
            if isinstance(exc, ValidationError):
                v.errors += _pydantic_errors(
                    n, exc, {"lines.0.unit_price_minor": "amount_paid_minor"}
                )
            else:
                v.errors.append(RowError(n, "amount_paid_minor", str(exc), "invalid"))
            continue
        if data.currency != programme.currency:
            v.errors.append(
                RowError(n, "currency", f"must be {programme.currency}", "currency_mismatch")
            )
        at = parse_instant(cells["occurred_at"])
        if at > now + _SKEW:
            v.errors.append(RowError(n, "occurred_at", "must not be in the future", "in_future"))
        elif backdate is not None and at < now - timedelta(days=backdate):
            v.errors.append(
                RowError(n, "occurred_at", f"must not be more than {backdate} days ago", "too_old")
            )
        code = data.store
        if code not in stores:
            try:
                org.open_store_in_scope(session, actor, code)
                stores[code] = None
            except LoyalistError as exc:
                stores[code] = exc.errors[0].message if exc.errors else exc.detail
        if stores[code]:
            v.errors.append(RowError(n, "store", str(stores[code]), "unknown_store"))
            continue
        if not ref or member is not None:
            v.rows.append(Prepared(n, cells, member[0] if member else None))
    v.errors += [
        RowError(
            e.row, "external_id", e.problem.replace("external_id", "store and external_id"), e.code
        )
        for e in _dupes(keys, "external_id")
    ]


def _validate_points(
    session: Session, actor: Actor, numbered: list[tuple[int, dict[str, str]]], v: Validation
) -> None:
    now = utcnow()
    known = _members_by_external(session, {c["member"] for _n, c in numbered if c.get("member")})
    for n, cells in numbered:
        bad = False
        member = known.get(cells.get("member", ""))
        if cells.get("member") and member is None:
            v.errors.append(RowError(n, "member", "unknown member", "unknown_member"))
            bad = True
        if len(cells.get("external_id", "")) > 128:
            v.errors.append(RowError(n, "external_id", "at most 128 characters", "too_long"))
            bad = True
        if cells.get("points"):
            try:
                pts = parse_int(cells["points"])
                if not 0 < pts <= 10**9:
                    raise ValueError("must be between 1 and 1000000000")
            except ValueError as exc:
                v.errors.append(RowError(n, "points", str(exc), "invalid"))
                bad = True
        earned: datetime | None = None
        if cells.get("earned_at"):
            try:
                earned = parse_instant(cells["earned_at"])
                if earned > now + _SKEW:
                    raise ValueError("must not be in the future")
            except ValueError as exc:
                v.errors.append(RowError(n, "earned_at", str(exc), "invalid"))
                bad = True
                earned = None
        if cells.get("expires_at"):
            try:
                expires = parse_instant(cells["expires_at"])
                if earned is not None and expires <= earned:
                    raise ValueError("must be after earned_at")
            except ValueError as exc:
                v.errors.append(RowError(n, "expires_at", str(exc), "invalid"))
                bad = True
        if not bad and member is not None and earned is not None:
            v.rows.append(Prepared(n, cells, member[0], member[1]))


# --- writing ---------------------------------------------------------------------------------


class VersionDiffers(Conflict):
    """A stopped import is resumed with another programme version than it started with."""

    code = "import_version_differs"
    title = "The import started under another programme version"


def version_label(number: int | None) -> str:
    return f"programme version {number}" if number is not None else "the version in force"


def check_programme_version(session: Session, kind: str, number: int | None) -> int | None:
    """The chosen programme version, checked: only orders earn under one, and it must be
    a published (stored) version. ``None``: each order earns under the version in force at
    its date."""
    if number is None:
        return None
    if kind != "orders":
        raise ValidationFailed(
            "Only orders earn under a programme version.",
            [FieldError("programme_version", "only for orders", "not_for_kind")],
        )
    published = [v.version for v in programmes.list_versions(session)]
    if number not in published:
        known = ", ".join(str(v) for v in published) or "none"
        raise ValidationFailed(
            f"There is no published programme version {number} (published: {known}).",
            [FieldError("programme_version", "no such published version", "unknown_version")],
        )
    return number


def open_batch(
    session: Session,
    actor: Actor,
    kind: str,
    checksum: str,
    filename: str,
    total: int,
    *,
    programme_version: int | None = None,
) -> ImportBatch:
    """The file's batch: the one already started (resume, or done: nothing to do) or a new
    one. The unique (kind, checksum) makes two starts of one file one batch. A stopped
    import resumes only under the programme version it started with (one file, one rule)."""
    require(actor, _PERMISSION[kind])
    check_programme_version(session, kind, programme_version)
    batch = session.scalar(
        select(ImportBatch).where(ImportBatch.kind == kind, ImportBatch.checksum == checksum)
    )
    if batch is not None:
        if batch.status != "done" and batch.programme_version != programme_version:
            raise VersionDiffers(
                f"This file's import started under {version_label(batch.programme_version)};"
                " resume it with the same choice.",
                [
                    FieldError(
                        "programme_version",
                        f"must be {version_label(batch.programme_version)}",
                        "version_differs",
                    )
                ],
            )
        return batch
    now = utcnow()
    batch = ImportBatch(
        kind=kind,
        checksum=checksum,
        filename=filename[-255:],
        status="running",
        total_rows=total,
        cursor=0,
        created=0,
        unchanged=0,
        actor=actor.name[:128],
        programme_version=programme_version,
        started_at=now,
        updated_at=now,
        finished_at=None,
    )
    session.add(batch)
    session.flush()
    audit.record(
        session,
        actor,
        "import.start",
        "import_batch",
        batch.id,
        org_path="/",
        after={
            "kind": kind,
            "filename": batch.filename,
            "rows": total,
            "checksum": checksum,
            **({"programme_version": programme_version} if programme_version is not None else {}),
        },
    )
    return batch


def part_checksum(checksum: str, part: int, parts: int) -> str:
    """The checksum naming part ``part`` of ``parts`` of a file (a batch of its own)."""
    return hashlib.sha256(f"{checksum}:part {part + 1}/{parts}".encode()).hexdigest()


def partition(session: Session, kind: str, rows: Sequence[Prepared], parts: int) -> list[int]:
    """The part (0 … parts - 1) of each row for ``parts`` processes: all the rows that draw
    on one points account (the member's, or a household pool it shares) in the same part,
    so that two processes never lock the same account; rows without a member in part 0."""
    mids = sorted({p.member_id for p in rows if p.member_id is not None})
    account: dict[int, int] = {}
    for k in range(0, len(mids), 1000):
        q = select(PointsAccountMember.member_id, PointsAccountMember.account_id).where(
            PointsAccountMember.member_id.in_(mids[k : k + 1000]),
            PointsAccountMember.left_at.is_(None),
        )
        account.update({int(m): int(a) for m, a in session.execute(q)})
    out: list[int] = []
    for p in rows:
        if p.member_id is None:
            out.append(0)
        elif p.member_id in account:
            out.append(account[p.member_id] % parts)
        else:  # no account yet: the member's own one will be opened by its rows
            out.append(p.member_id % parts)
    return out


def open_part(
    session: Session,
    actor: Actor,
    parent: ImportBatch,
    part: int,
    parts: int,
    total: int,
) -> ImportBatch:
    """The batch of one part of a file imported by several processes (its own cursor); a
    part without rows is done at once."""
    batch = open_batch(
        session,
        actor,
        parent.kind,
        part_checksum(parent.checksum, part, parts),
        f"{parent.filename} (part {part + 1}/{parts})",
        total,
        programme_version=parent.programme_version,
    )
    if total == 0 and batch.status != "done":
        batch.status = "done"
        batch.finished_at = batch.updated_at = utcnow()
        session.flush()
    return batch


def finish_parts(session: Session, actor: Actor, parent_id: int, part_ids: list[int]) -> None:
    """Mark the file's batch done once all its parts are: created and unchanged summed."""
    parent = lock_batch(session, parent_id)
    if parent.status == "done":
        return
    parts = [lock_batch(session, i) for i in part_ids]
    if any(p.cursor < p.total_rows for p in parts):
        raise RuntimeError("a part of the import is not finished")
    parent.cursor = parent.total_rows
    parent.created += sum(p.created for p in parts)  # and what a run in one process wrote
    parent.unchanged = parent.total_rows - parent.created
    parent.updated_at = utcnow()
    _finish(session, actor, parent)
    session.flush()


def _finish(session: Session, actor: Actor, batch: ImportBatch) -> None:
    """The batch is done (at its last update): audited with what it created."""
    batch.status = "done"
    batch.finished_at = batch.updated_at
    audit.record(
        session,
        actor,
        "import.finish",
        "import_batch",
        batch.id,
        org_path="/",
        after={"created": batch.created, "unchanged": batch.unchanged},
    )


def lock_batch(session: Session, batch_id: int) -> ImportBatch:
    q = select(ImportBatch).where(ImportBatch.id == batch_id)
    if session.get_bind().dialect.name != "sqlite":
        q = q.with_for_update()
    return session.execute(q.execution_options(populate_existing=True)).scalar_one()


def write_rows(
    session: Session, actor: Actor, batch: ImportBatch, rows: Sequence[Prepared]
) -> None:
    """Write the next rows of the (locked) batch and move its cursor past them: committed
    together, so a crash resumes exactly after the last committed batch of rows."""
    created = 0
    if batch.kind == "orders":  # set-based: the whole batch of rows at once
        done = orders.record_many(
            session,
            actor,
            [_order_create(p.cells, p.member_id) for p in rows],
            labels=[f"row {p.row}" for p in rows],
            programme_version=batch.programme_version,
        )
        created = sum(done)
        rows_left: Sequence[Prepared] = ()
    else:
        rows_left = rows
    writer = {"members": _write_member, "points": _write_points}.get(batch.kind, _write_member)
    for p in rows_left:
        try:
            created += writer(session, actor, batch, p)
        except LoyalistError as exc:  # changed since the validation: the batch rolls back
            exc.detail = f"row {p.row}: {exc.detail}"
            raise
        # The next row may lock the same account again (a re-read of its row): this row's
        # changes to it must be in the database by then.
        session.flush()
    batch.cursor += len(rows)
    batch.created += created
    batch.unchanged += len(rows) - created
    batch.updated_at = utcnow()
    if batch.cursor >= batch.total_rows:
        _finish(session, actor, batch)
    session.flush()


def _write_member(session: Session, actor: Actor, _batch: ImportBatch, p: Prepared) -> int:
    return int(members.create(session, actor, _member_create(p.cells)).created)


def _write_points(session: Session, actor: Actor, batch: ImportBatch, p: Prepared) -> int:
    key = f"import:points:{p.cells['external_id']}"
    if session.scalar(select(LedgerEntry.id).where(LedgerEntry.dedupe_key == key)) is not None:
        return 0
    assert p.member_id is not None
    earned = parse_instant(p.cells["earned_at"])
    expires = parse_instant(p.cells["expires_at"]) if p.cells.get("expires_at") else None
    acct = ledger.lock(session, p.member_id, p.org_path)
    ledger.credit(
        session,
        acct,
        parse_int(p.cells["points"]),
        ledger.Cause(
            source_type="import",
            source_id=p.cells["external_id"],
            actor=actor.name,
            reason=f"carried balance (import {batch.id}, row {p.row})",
            occurred_at=earned,
        ),
        kind="earn",
        earned_at=earned,
        available_at=earned,
        expires_at=expires,
        dedupe_key=key,
    )
    ledger.expire_due(session, acct)  # a carried lot already past its expiry expires now
    return 1


def batch_out(b: ImportBatch) -> dict[str, Any]:
    return {
        "id": b.id,
        "kind": b.kind,
        "filename": b.filename,
        "checksum": b.checksum,
        "status": b.status,
        "total_rows": b.total_rows,
        "done_rows": b.cursor,
        "created": b.created,
        "unchanged": b.unchanged,
        "programme_version": b.programme_version,
        "started_at": b.started_at.isoformat(),
        "finished_at": b.finished_at.isoformat() if b.finished_at else None,
    }


# what an orders import fills and then reads back in later batches (tier spend, due lots,
# existing external ids, the ledger chain's tail)
_GROWING = ("orders", "order_line", "ledger_entry", "points_lot", "outbox_event")


def refresh_statistics(session: Session) -> None:
    """``ANALYZE`` the tables a bulk import fills (PostgreSQL). Without it, a database whose
    statistics were taken when the tables were nearly empty (autovacuum off, or not yet
    round) plans the batch reads (a 12-month spend per member, say) as if they touched a few
    rows, and each batch gets slower as the tables grow (1M orders: from 2,800 to 520
    rows/s). SQLite plans from its indexes and is left alone."""
    if is_sqlite(session):
        return
    session.execute(text("ANALYZE " + ", ".join(_GROWING)))
