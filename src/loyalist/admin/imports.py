"""Console: bulk import (导入, issue 13 item 5) — the CLI's ``loyalist import`` from a page.

* ``GET /admin/import`` — the upload form and the recent imports; ``?batch=ID`` shows one
  import's progress (rows done / total, polled by HTMX every 2 s while it runs) and result;
* ``POST /admin/import`` — a CSV or .xlsx file (multipart, CSRF, at most
  ``LOYALIST_IMPORT_MAX_BYTES``) and its kind: the whole file is validated and the
  row-by-row report (row, field, problem) shown with nothing written; a valid file is kept
  in the data directory (``LOYALIST_IMPORT_DIR``) and offered for confirmation;
* ``POST /admin/import/start`` — the confirmation: the import runs as background jobs
  (``bulkimport.uploads``), the same file twice is one import that changes nothing.

Every route needs ``jobs.manage`` (the imports run as jobs across the whole organisation);
validating and writing need the kind's own permission too (``member.write``,
``order.write``, ``points.adjust``), checked by the import service as for the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from loyalist.access import permissions as perm
from loyalist.admin.pages import FormDep, StaffDep, in_db, is_htmx, translator
from loyalist.admin.web import AdminRoute, Staff, db_of, render
from loyalist.bulkimport import runner, service, uploads
from loyalist.bulkimport.domain import COLUMNS, KINDS, RowError, checksum
from loyalist.config import get_settings
from loyalist.errors import FieldError, ValidationFailed
from loyalist.models import ImportBatch
from loyalist.programme import service as programmes

NOTICES = ("queued", "already")
SHOWN_ERRORS = 500  # rows of the report on the page (the count says how many in all)

KIND_NAMES = {"members": "Members", "orders": "Orders", "points": "Carried points balances"}
COLUMN_NAMES = {
    "external_id": "External ID",
    "phone": "Phone",
    "email": "Email",
    "name": "Name",
    "birthday": "Birthday",
    "gender": "Gender",
    "city": "City",
    "home_store": "Home store",
    "join_channel": "Join channel",
    "tags": "Tags",
    "member": "Member",
    "store": "Store",
    "occurred_at": "Order time",
    "amount_paid_minor": "Amount paid",
    "channel": "Channel",
    "currency": "Currency",
    "sku": "SKU",
    "category": "Category",
    "points": "Points",
    "earned_at": "Earned at",
    "expires_at": "Expires at",
    "file": "File",
    "row": "Row",
}
# The import's problems (English, from bulkimport) → msgids of the console catalogue.
PROBLEMS = {
    "unknown column": "unknown column",
    "required column missing": "required column missing",
    "column given twice": "column given twice",
    "required": "required",
    "unknown member": "unknown member",
    "must not be in the future": "must not be in the future",
    "already registered to another member": "already registered to another member",
    "the file has no data rows": "the file has no data rows",
    "must be a whole number": "must be a whole number",
    "must be an ISO 8601 date-time with a UTC offset": "must be a date and time with a UTC offset",
    "needs a UTC offset, e.g. 2026-05-01T10:00:00+08:00": "needs a UTC offset",
    "must be between 1 and 1000000000": "must be between 1 and 1000000000",
    "must be after earned_at": "must be after the earning time",
    "at most 128 characters": "at most 128 characters",
    "the file is not UTF-8 text (CSV) nor .xlsx": "the file is not UTF-8 text (CSV) nor Excel",
    "the file has no header line": "the file has no header line",
    "the file is not a readable .xlsx workbook": "the file is not a readable Excel workbook",
}
_SAME_AS = re.compile(r"^same .+ as row (\d+)$")
_MUST_BE = re.compile(r"^must be ([A-Z]{3})$")
_TOO_OLD = re.compile(r"^must not be more than (\d+) days ago$")
# By code, when the text itself is not one of the above (it is then shown beside, as code).
BY_CODE = {
    "unknown_store": "unknown store, or a store outside your scope",
    "taken": "already registered to another member",
    "invalid": "invalid value",
}


def problem_text(e: RowError, _: Callable[[str], str]) -> tuple[str, str]:
    """(the problem in the page's language, the original text when it says more)."""
    if e.problem in PROBLEMS:
        return _(PROBLEMS[e.problem]), ""
    if m := _SAME_AS.match(e.problem):
        return _("same value as row %(n)s").replace("%(n)s", m.group(1)), ""
    if m := _MUST_BE.match(e.problem):
        return _("must be %(currency)s").replace("%(currency)s", m.group(1)), ""
    if m := _TOO_OLD.match(e.problem):
        return _("must not be more than %(n)s days ago").replace("%(n)s", m.group(1)), ""
    return _(BY_CODE.get(e.code, "invalid value")), e.problem


def column_label(name: str, _: Callable[[str], str]) -> str:
    return _(COLUMN_NAMES[name]) if name in COLUMN_NAMES else ""


def version_text(number: int | None, _: Callable[[str], str]) -> str:
    """What an orders import earns under, in the page's language."""
    if number is None:
        return _("The version in force at each order's date")
    return _("programme version %(n)s").replace("%(n)s", str(number))


def _batch_id(value: str) -> int | None:
    v = value.strip()
    return int(v) if v.isdigit() and len(v) <= 9 and int(v) > 0 else None


def chosen_version(s: Session, kind: str, raw: str | None) -> tuple[int | None, dict[str, str]]:
    """The form's programme version (empty: the version in force at each order's date),
    checked like the CLI's ``--programme-version``: (the version, field errors)."""
    value = (raw or "").strip()
    if not value:
        return None, {}
    if not value.isdigit() or len(value) > 9:
        return None, {"programme_version": "There is no such published programme version."}
    try:
        return service.check_programme_version(s, kind, int(value)), {}
    except ValidationFailed as exc:
        code = exc.errors[0].code if exc.errors else ""
        if code == "not_for_kind":
            return None, {"programme_version": "Only orders earn under a programme version."}
        return None, {"programme_version": "There is no such published programme version."}


async def _page(
    request: Request, st: Staff, extra: dict[str, Any], *, status: int = 200, batch: int | None
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        return {
            "batches": uploads.recent(s),
            "chosen": uploads.view(s, batch) if batch is not None else None,
            "versions": list(reversed(programmes.list_versions(s))),
        }

    ctx = await in_db(request, st, work)
    _locale, _ = translator(request, st)
    ctx.update(
        {
            "kinds": KINDS,
            "kind_names": KIND_NAMES,
            "columns": COLUMNS,
            "max_mb": get_settings().import_max_bytes // 1_000_000,
            "problem_text": lambda e: problem_text(e, _),
            "column_label": lambda name: column_label(name, _),
            "version_text": lambda n: version_text(n, _),
            "errors": {},
            "form": {},
            "report": None,
            "ready": None,
            "notice": "",
        }
    )
    ctx.update(extra)
    if is_htmx(request) and ctx["chosen"] is not None:
        return render(request, "import_progress.html", ctx, status=status)
    return render(request, "import.html", ctx, status=status)


async def import_page(
    request: Request, st: StaffDep, batch: str = "", notice: str = ""
) -> Response:
    perm.require(st.actor, perm.JOBS_MANAGE)
    extra = {"notice": notice if notice in NOTICES else ""}
    return await _page(request, st, extra, batch=_batch_id(batch))


async def import_upload(request: Request, st: StaffDep, form: FormDep) -> Response:
    """Validate the uploaded file: the report (nothing written), or the confirmation."""
    perm.require(st.actor, perm.JOBS_MANAGE)
    kind = form.get("kind", "")
    errors: dict[str, str] = {}
    if kind not in KINDS:
        errors["kind"] = "Choose what the file holds."
    upload = (await request.form()).get("file")
    name = upload.filename or "" if isinstance(upload, UploadFile) else ""
    suffix = uploads.suffix_of(name)
    if not isinstance(upload, UploadFile) or not name:
        errors["file"] = "Choose a file."
    elif suffix is None:
        errors["file"] = "The file must be a .csv or .xlsx file."
    version, version_errors = await in_db(
        request, st, lambda s: chosen_version(s, kind, form.get("programme_version"))
    )
    errors.update(version_errors)
    if errors or not isinstance(upload, UploadFile) or suffix is None:
        return await _page(request, st, {"errors": errors, "form": form}, status=422, batch=None)
    data = await upload.read()
    filename = name.replace("\\", "/").rsplit("/", 1)[-1][-255:]
    db = db_of(request)
    v = await run_in_threadpool(runner.check, db, st.actor, kind, data, filename)
    report = {"kind": kind, "filename": filename, "total": v.total}
    if not v.ok:
        report["errors"] = v.errors[:SHOWN_ERRORS]
        report["count"] = len(v.errors)
        return await _page(request, st, {"report": report, "form": form}, status=422, batch=None)
    digest = checksum(data)

    def done_batch(s: Session) -> int | None:
        q = select(ImportBatch.id).where(
            ImportBatch.kind == kind, ImportBatch.checksum == digest, ImportBatch.status == "done"
        )
        return s.scalar(q)

    ready = {**report, "checksum": digest, "suffix": suffix, "rows": len(v.rows)}
    ready["programme_version"] = version
    ready["done_batch"] = await in_db(request, st, done_batch)
    if ready["done_batch"] is None:  # kept for the import jobs (by checksum: once per file)
        await run_in_threadpool(uploads.keep, data, suffix)
    return await _page(request, st, {"ready": ready, "form": form}, batch=None)


async def import_start(request: Request, st: StaffDep, form: FormDep) -> Response:
    """The staff confirmed a validated file: queue its import (or see it was done)."""
    perm.require(st.actor, perm.JOBS_MANAGE)
    kind, digest = form.get("kind", ""), form.get("checksum", "").strip()
    suffix, filename = form.get("suffix", ""), form.get("filename", "").strip()[-255:] or "upload"
    raw_version = form.get("programme_version", "").strip()
    if raw_version and (not raw_version.isdigit() or len(raw_version) > 9):
        raise ValidationFailed(
            "There is no such published programme version.",
            [FieldError("programme_version", "no such published version", "unknown_version")],
        )
    version = int(raw_version) if raw_version else None

    def work(s: Session) -> tuple[int, bool]:
        started = uploads.start(
            s, st.actor, st.login, kind, digest, suffix, filename, programme_version=version
        )
        return started.batch.id, started.queued

    batch_id, queued = await in_db(request, st, work)
    notice = "queued" if queued else "already"
    return RedirectResponse(f"/admin/import?batch={batch_id}&notice={notice}", status_code=303)


def register(router: APIRouter) -> None:
    """Add the pages to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/import", import_page, methods=["GET"])
    router.add_api_route("/admin/import", import_upload, methods=["POST"])
    router.add_api_route("/admin/import/start", import_start, methods=["POST"])
