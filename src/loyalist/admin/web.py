"""Console plumbing: sessions and CSRF, locale, formatting, rendering, error pages."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.admin import labels
from loyalist.errors import FieldError, LoyalistError
from loyalist.kit import i18n
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.member import domain as member_domain
from loyalist.reward import domain as fulfilment
from loyalist.staff import service as staff

if TYPE_CHECKING:
    # Imported when the console renders its first page, not when the API server starts.
    from jinja2 import Environment

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
LOCALE_DIR = HERE / "locale"
STATIC = HERE / "static"
COOKIE = "loyalist_staff"
LANG_COOKIE = "loyalist_lang"
LOGIN_CSRF_COOKIE = "loyalist_login_csrf"
CSRF_HEADER = "x-csrf-token"


class NeedLogin(Exception):
    pass


class CsrfFailed(LoyalistError):
    status = 403
    code = "csrf_failed"
    title = "The form has expired; reload the page and try again"


# ── formatting ─────────────────────────────────────────────────────────────────────────
def _babel(locale: str) -> str:
    return "zh_Hans_CN" if locale == "zh_CN" else "en"


@dataclass(frozen=True)
class Fmt:
    locale: str
    tz: ZoneInfo
    currency: str = "CNY"

    def money(self, minor: int | None, short: bool = True) -> str:
        from babel.numbers import format_currency, format_decimal

        if minor is None:
            return "—"
        amount = Decimal(minor) / 100
        if self.locale == "zh_CN":
            if short and abs(amount) >= 10_000:
                wan = amount / 10_000
                return f"¥{format_decimal(round(wan, 2), format='#,##0.##', locale='zh_CN')}万"
            return f"¥{format_decimal(amount, format='#,##0.00', locale='zh_CN')}"
        return str(format_currency(amount, self.currency, locale="en"))

    def num(self, n: int | float | None, short: bool = False) -> str:
        from babel.numbers import format_decimal

        if n is None:
            return "—"
        if self.locale == "zh_CN" and short and abs(n) >= 10_000:
            wan = round(Decimal(n) / 10_000, 2)
            return f"{format_decimal(wan, format='#,##0.##', locale='zh_CN')}万"
        return str(format_decimal(n, locale=_babel(self.locale)))

    def pct(self, x: float) -> str:
        from babel.numbers import format_percent

        return str(format_percent(x, format="#,##0.0%", locale=_babel(self.locale)))

    def dt(self, value: datetime | None) -> str:
        from babel.dates import format_datetime

        if value is None:
            return "—"
        return str(
            format_datetime(value.astimezone(self.tz), format="medium", locale=_babel(self.locale))
        )

    def day(self, value: date | datetime | None) -> str:
        from babel.dates import format_date

        if value is None:
            return "—"
        if isinstance(value, datetime):
            value = value.astimezone(self.tz).date()
        return str(format_date(value, format="medium", locale=_babel(self.locale)))

    def last_day(self, value: datetime | None) -> str:
        """The last local day before ``value``: an expiry at 00:00 on 1 January shows as
        31 December, the last day the points can be used."""
        if value is None:
            return "—"
        return self.day(value.astimezone(self.tz) - timedelta(microseconds=1))

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.tz)


def mask_phone(phone: str | None) -> str:
    """The member domain's mask, with a dash for no phone (for display)."""
    return member_domain.mask_phone(phone) or "—"


def redemption_state(r: Any) -> str:
    """ready | collected | expired | cancelled, now."""
    return fulfilment.state(
        status=r.status, collected_at=r.collected_at, expires_at=r.expires_at, now=utcnow()
    )


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def show_phone(phone: str | None, masked: bool = True) -> str:
    """A stored phone as people write it (national format for mainland numbers), masked
    unless the viewer may see it."""
    return member_domain.display_phone(phone, masked=masked) or "—"


def changes(
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    locale: str = "en",
    names: dict[str, dict[str, str]] | None = None,
) -> list[tuple[str, str, str, bool]]:
    """An audit row's fields side by side: (label, before, after, changed), with fields by
    their labels, money as money and phones masked in national format."""
    _ = gettext_for(locale)
    fmt = Fmt(locale, ZoneInfo("Asia/Shanghai"))

    def shown(key: str, v: Any) -> str:
        words = labels.value(
            key, v, _, lambda m: fmt.money(m, short=False), lambda p: show_phone(p), names
        )
        return words if words is not None else _show(v)

    b, a = before or {}, after or {}
    keys = list(b) + [k for k in a if k not in b]
    out = []
    for k in keys:
        old = shown(k, b.get(k)) if k in b else ""
        new = shown(k, a.get(k)) if k in a else ""
        out.append((labels.field(k, _), old, new, b.get(k) != a.get(k)))
    return out


# ── templates ──────────────────────────────────────────────────────────────────────────
_envs: dict[str, Environment] = {}
_env_lock = threading.Lock()


def env_for(locale: str) -> Environment:
    """One environment per locale with its gettext catalogue installed (thread-safe)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    with _env_lock:
        env = _envs.get(locale)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(TEMPLATES),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(  # type: ignore[attr-defined]
                i18n.translations(locale, (LOCALE_DIR,)), newstyle=True
            )
            env.globals["mask_phone"] = mask_phone
            env.globals["mask_email"] = member_domain.mask_email
            env.globals["mask_token"] = member_domain.mask_token
            env.globals["mask_identity"] = member_domain.mask_identity
            env.globals["redemption_code"] = fulfilment.format_code
            env.globals["redemption_state"] = redemption_state
            env.globals["changes"] = functools.partial(changes, locale=locale)
            env.globals["show_phone"] = show_phone
            env.globals["tr"] = gettext_for(locale)  # plain lookup for messages from code
            _envs[locale] = env
    return env


def gettext_for(locale: str) -> Callable[[str], str]:
    t = i18n.translations(locale, (LOCALE_DIR,))
    return lambda s: str(t.gettext(s))


# ── the signed-in staff member ─────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Staff:
    user_id: int
    login: str
    role: str
    unit_code: str
    unit_name: str
    session_id: int
    csrf: str
    locale_pref: str | None
    actor: Actor

    def can(self, action: str) -> bool:
        return self.actor.can(action)


def db_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def locale_of(request: Request, pref: str | None = None) -> str:
    return i18n.negotiate(
        request.headers.get("accept-language"), pref or request.cookies.get(LANG_COOKIE)
    )


def _load_staff(db: Database, token: str) -> Staff | None:
    from loyalist.org import service as org

    def work(s: Session) -> Staff | None:
        cur = staff.authenticate(s, token)
        if cur is None:
            return None
        unit = org.get(s, cur.user.org_unit_id)
        return Staff(
            user_id=cur.user.id,
            login=cur.user.login,
            role=cur.user.role,
            unit_code=unit.code,
            unit_name=unit.name,
            session_id=cur.session.id,
            csrf=cur.session.csrf_token,
            locale_pref=cur.user.locale,
            actor=cur.actor,
        )

    result: Staff | None = db.run(work)
    return result


async def current_staff(request: Request) -> Staff:
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise NeedLogin()
    st = await run_in_threadpool(_load_staff, db_of(request), token)
    if st is None:
        raise NeedLogin()
    request.state.staff = st
    return st


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form, after the CSRF check (form field or the HTMX header)."""
    st: Staff | None = getattr(request.state, "staff", None)
    if st is None:
        st = await current_staff(request)
    form = await request.form()
    presented = request.headers.get(CSRF_HEADER) or str(form.get("csrf_token", ""))
    import hmac

    if not presented or not hmac.compare_digest(presented.encode(), st.csrf.encode()):
        raise CsrfFailed("The CSRF token is missing or wrong.")
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def is_https(request: Request) -> bool:
    return (
        request.url.scheme == "https"
        or request.headers.get("x-forwarded-proto", "").lower() == "https"
    )


def set_cookie(request: Request, response: Response, name: str, value: str, **kw: Any) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
        **kw,
    )


# ── rendering ──────────────────────────────────────────────────────────────────────────
def render(
    request: Request,
    template: str,
    ctx: dict[str, Any],
    *,
    status: int = 200,
    staff_: Staff | None = None,
    tz: ZoneInfo | None = None,
    locale: str | None = None,
) -> HTMLResponse:
    st = staff_ or getattr(request.state, "staff", None)
    locale = locale or locale_of(request, st.locale_pref if st else None)
    fmt = Fmt(locale, tz or ZoneInfo("Asia/Shanghai"))
    env = env_for(locale)
    html = env.get_template(template).render(
        request=request,
        staff=st,
        locale=locale,
        fmt=fmt,
        htmx=request.headers.get("hx-request") == "true",
        **ctx,
    )
    return HTMLResponse(html, status_code=status)


def errors_by_field(errors: list[FieldError]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in errors:
        out.setdefault(e.field, e.message)
    return out


class AdminRoute(APIRoute):
    """Turns console exceptions into pages: login redirect, 403/404/409/422 in HTML."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except NeedLogin:
                if request.method == "GET":
                    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"/admin/login?next={nxt}", status_code=303)
                return render(request, "error.html", {"status": 401, "error": None}, status=401)
            except LoyalistError as exc:
                return render(
                    request, "error.html", {"status": exc.status, "error": exc}, status=exc.status
                )
            except RequestValidationError as exc:
                detail = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                    for e in exc.errors()[:5]
                )
                err = LoyalistError(detail)
                return render(request, "error.html", {"status": 422, "error": err}, status=422)

        return handler
