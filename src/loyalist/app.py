"""The FastAPI application factory."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loyalist import __version__
from loyalist.admin.administration import router as administration_router
from loyalist.admin.endpoints import router as admin_router
from loyalist.admin.habits import router as admin_habits_router  # habits (issue 12)
from loyalist.admin.journeys import router as admin_journeys_router  # journeys (issue 14)
from loyalist.admin.messages import router as admin_messages_router
from loyalist.admin.webhooks import router as admin_webhooks_router
from loyalist.api import include_api
from loyalist.config import Settings, get_settings
from loyalist.errors import (
    FieldError,
    LoyalistError,
    OutOfRange,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from loyalist.http import PARSED_BODY, openapi_document
from loyalist.kit.admission import Admission
from loyalist.kit.db import Database
from loyalist.kit.route_index import index_routes
from loyalist.member_web.endpoints import router as member_web_router
from loyalist.member_web.habits import router as member_habits_router  # habits (issue 12)
from loyalist.member_web.household import router as member_household_router  # households
from loyalist.member_web.privacy import router as member_privacy_router  # privacy2
from loyalist.member_web.referrals import router as member_referrals_router  # issue 12

log = logging.getLogger("loyalist")
PROBLEM = "application/problem+json"


def problem_response(
    exc: LoyalistError, request: Request, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        exc.problem(instance=request.url.path),
        status_code=exc.status,
        media_type=PROBLEM,
        headers=headers,
    )


def _route_methods(routes: Any, path: str, found: list[tuple[str, set[str]]]) -> None:
    for route in routes:
        nested = getattr(route, "effective_candidates", None)  # an included router
        if callable(nested):
            _route_methods(nested(), path, found)
            continue
        route_path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(route_path, str) and methods and compile_path(route_path)[0].match(path):
            found.append((route_path, set(methods)))


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method some route at this path accepts (Starlette's 405 names only the first
    route whose path matched). A path written out in full (``/v1/orders/quote``) is that
    resource alone, not also a value of a parameter (``/v1/orders/{order_id}``)."""
    found: list[tuple[str, set[str]]] = []
    _route_methods(app.router.routes, request.url.path, found)
    exact = [m for p, m in found if p == request.url.path]
    methods: set[str] = set().union(*(exact or [m for _p, m in found]))
    return ", ".join(sorted(methods))


# A NUL character in JSON text (an unescaped backslash, then u0000), raw or form-encoded.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000|\x00|%00", re.IGNORECASE)
_JSON_TYPES = re.compile(r"^application/([a-z0-9.+-]+\+)?json\s*(;|$)", re.IGNORECASE)
# Seconds a client waits before retrying while the database is unreachable.
RETRY_AFTER_S = 5


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_problem(body: bytes, scope: Scope) -> LoyalistError | None:
    """A JSON body that is not one well-formed JSON text, or has an object with the same key
    twice (which a parser would silently take last-wins). A body that is well formed is
    handed on parsed, with the body, in ``scope[PARSED_BODY]`` (the lean handler reads it
    rather than parsing the body again: the same value, as no key is there twice)."""
    try:
        value = json.loads(body, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except _DuplicateKey as dup:
        return ValidationFailed(
            f"The key {dup.key!r} appears more than once in a JSON object.",
            [FieldError(dup.key, "duplicate key in a JSON object", "duplicate_key")],
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        return ValidationFailed(
            f"The body is not valid JSON ({exc.msg} at {where}).",
            [FieldError("body", f"not valid JSON: {exc.msg} at {where}", "json_invalid")],
        )
    except RecursionError:
        return LoyalistError("The JSON body is nested too deeply.")
    except ValueError as exc:  # NaN / Infinity, or bytes that are not UTF-8/16/32
        return ValidationFailed(
            f"The body is not valid JSON ({exc}).",
            [FieldError("body", f"not valid JSON: {exc}", "json_invalid")],
        )
    scope[PARSED_BODY] = (body, value)
    return None


def _refuse_input(request: Request, body: bytes) -> LoyalistError | None:
    """Input that no route accepts: NUL characters (PostgreSQL cannot store them in text)
    and, on the JSON API, a body that is not JSON."""
    # (no query string: no URL to build, speed, issue 11)
    if request.scope.get("query_string") and _NUL.search(request.url.query.encode()):
        return ValidationFailed(
            "Text must not contain NUL characters.",
            [FieldError("query", "contains a NUL character", "nul_character")],
        )
    if not body:
        return None
    if request.url.path.startswith("/v1/") and not _JSON_TYPES.match(
        request.headers.get("content-type", "")
    ):
        return UnsupportedMediaType("Send the body as application/json.")
    if _NUL.search(body):
        return ValidationFailed(
            "Text must not contain NUL characters.",
            [FieldError("body", "contains a NUL character", "nul_character")],
        )
    if request.url.path.startswith("/v1/"):
        return _json_problem(body, request.scope)
    return None


def _is_import_upload(request: Request) -> bool:
    return (
        request.method == "POST"
        and request.url.path == "/admin/import"
        and request.headers.get("content-type", "").startswith("multipart/form-data")
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        # "limit", not "query.limit": the same name the services use for the same field
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


class InputGuard:
    """ASGI middleware: the body size limit, and input no route accepts (``_refuse_input``),
    answered as problem+json before any route runs; the body read here is handed on.

    A plain ASGI class rather than ``@app.middleware("http")``: Starlette's
    ``BaseHTTPMiddleware`` runs the rest of the app in a task group with memory streams
    for every request, which costs more than the checks themselves (speed, issue 11)."""

    def __init__(self, app: ASGIApp, *, limit: int, import_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.import_limit = import_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        # The console's import upload (a CSV or .xlsx file) has its own size limit and may
        # hold any byte (an .xlsx is a zip); its form fields are checked by the page.
        upload = _is_import_upload(request)
        cap = max(self.limit, self.import_limit) if upload else self.limit
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            await self._refuse(PayloadTooLarge(f"The body exceeds {cap} bytes."), request, send)
            return
        body = b""
        if scope["method"] in ("POST", "PUT", "PATCH"):
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    # The client gave up before its body was read (a timeout while the
                    # request waited for a slot): nothing was done, nobody is there to answer.
                    log.info("client went away before its body was read: %s", scope["path"])
                    await Response(status_code=499)(scope, receive, send)
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > cap:
                    await self._refuse(
                        PayloadTooLarge(f"The body exceeds {cap} bytes."), request, send
                    )
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
        refused = _refuse_input(request, b"" if upload else body)
        if refused is not None:
            await self._refuse(refused, request, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(exc: LoyalistError, request: Request, send: Send) -> None:
        await problem_response(exc, request)(request.scope, request.receive, send)


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Every feature's actions, document kinds, job kinds and consumers are known to the API
    # process too (e.g. issue_coupon when a journey is published, the habits document).
    from loyalist import bootstrap

    bootstrap.configure()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_db:
            app.state.db.dispose()

    owns_db = db is None
    app = FastAPI(
        title="Loyalist API",
        version=__version__,
        description="Members, points, tiers, rewards and events. Errors are RFC 9457 "
        "problem+json; every write accepts an Idempotency-Key header.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.db = db or Database(settings.database_url)
    app.state.settings = settings
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]

    @app.exception_handler(LoyalistError)
    async def _loyalist_error(request: Request, exc: LoyalistError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            msg = str(err.get("msg", "invalid"))
            if err.get("type") == "json_invalid":
                msg = "the body is not valid JSON"
            errors.append({"field": _field(loc), "message": msg, "code": str(err.get("type"))})
        body = {
            "type": "https://loyalist.dev/problems/validation-failed",
            "title": "The request is not valid",
            "status": 422,
            "code": "validation_failed",
            "detail": "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]),
            "instance": request.url.path,
            "errors": errors,
        }
        return JSONResponse(body, status_code=422, media_type=PROBLEM)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(app, request)
        body = {
            "type": f"https://loyalist.dev/problems/{code.replace('_', '-')}",
            "title": str(exc.detail),
            "status": exc.status_code,
            "code": code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return JSONResponse(
            body, status_code=exc.status_code, media_type=PROBLEM, headers=headers or None
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(DBAPIError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError) and not (
            isinstance(exc, OperationalError) or exc.connection_invalidated
        ):
            return await _unexpected(request, exc)
        # The database is unreachable, restarting or locked beyond the retries: nothing was
        # written (the transaction did not commit); the same request may be sent again.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            ServiceUnavailable(
                "The database is unavailable; nothing was written. Try again shortly.",
                extra={"retry_after": RETRY_AFTER_S},
            ),
            request,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # A value the database cannot hold (a number beyond 64 bits, a date out of range):
        # the transaction rolled back; the input is at fault, not the server.
        log.info("refused a value out of range on %s: %s", request.url.path, exc)
        return problem_response(
            OutOfRange("A value in the request is too large or too small to be stored."), request
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = {
            "type": "https://loyalist.dev/problems/internal-error",
            "title": "Internal error",
            "status": 500,
            "code": "internal_error",
            "detail": "An unexpected error occurred; nothing was written.",
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=500, media_type=PROBLEM)

    # The body limit and the input every route refuses, before any route runs.
    app.add_middleware(
        InputGuard, limit=settings.max_body_bytes, import_limit=settings.import_max_bytes
    )

    static_dir = __import__("pathlib").Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.get("/docs", include_in_schema=False)
    async def _docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Loyalist API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
        )

    @app.get("/healthz", include_in_schema=False)
    async def _health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    include_api(app)  # the /v1 routers
    app.include_router(member_web_router)  # the member page at /m
    app.include_router(member_referrals_router)  # its referral, assist and group screens
    app.include_router(member_privacy_router)  # the member's own data export (privacy2)
    app.include_router(administration_router)  # console administration (before /admin/members/{id})
    app.include_router(admin_router)  # the staff console at /admin
    app.include_router(admin_webhooks_router)  # its webhooks pages
    app.include_router(admin_journeys_router)  # journeys (issue 14)
    app.include_router(admin_messages_router)  # channels: templates, preview, messages
    app.include_router(member_habits_router)  # its check-in, badges and boards at /m/habits
    app.include_router(admin_habits_router)  # its habits page (check-ins, badges, boards)
    app.include_router(member_household_router)  # the member's household at /m/household
    index_routes(app.router)  # a request tries only the routes that can match its path
    # Outermost: under overload a request is refused before any work (503, Retry-After).
    app.add_middleware(
        Admission,
        limit=settings.max_in_flight,
        wait_s=settings.admission_wait_s,
        max_waiting=settings.admission_max_waiting,
        retry_after_max_s=settings.admission_retry_after_max_s,
    )
    return app
