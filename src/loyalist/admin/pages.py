"""The set-up shared by the console's pages that work in the database from a thread and
follow a background run (import, backtest, analytics, liability and privacy): the staff
and CSRF-checked form dependencies, one transaction as the signed-in staff user, the
page's translator, and the choice between the whole page and its HTMX-polled part."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.admin.web import Staff, checked_form, current_staff, db_of, gettext_for, locale_of

StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]


async def in_db(request: Request, st: Staff, fn: Callable[[Session], Any]) -> Any:
    """``fn`` in one transaction as the staff user, in a worker thread (the database calls
    block)."""
    return await run_in_threadpool(lambda: db_of(request).run(fn, actor=st.actor))


def translator(request: Request, st: Staff) -> tuple[str, Callable[[str], str]]:
    """The page's locale (the staff's preference, else the browser's) and its gettext."""
    locale = locale_of(request, st.locale_pref)
    return locale, gettext_for(locale)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def page_or_part(request: Request, page: str, part: str) -> str:
    """The template: ``part`` (the progress fragment) when HTMX polls, else ``page``."""
    return part if is_htmx(request) else page
