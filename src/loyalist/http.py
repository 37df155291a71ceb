"""HTTP glue shared by the feature endpoints: database, caller, idempotent writes, and the
API contract (unknown query parameters refused, problem+json documented per operation)."""

from __future__ import annotations

import email.message
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from functools import lru_cache
from typing import Annotated, Any, TypeVar, get_type_hints

import orjson
from fastapi import Depends, FastAPI, Header, Path, Query, Request, params
from fastapi import routing as fastapi_routing
from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies import utils as fastapi_params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import OpenAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.security.base import SecurityBase
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined as Undefined
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from loyalist.access import service as access
from loyalist.errors import FieldError, Unauthorized, ValidationFailed
from loyalist.idempotency.service import Answer, run_idempotent
from loyalist.kit.actor import Actor
from loyalist.kit.client import client_ip
from loyalist.kit.db import MAX_INT4, MAX_INT8, Database
from loyalist.kit.hashing import sha256_hex
from loyalist.kit.uow import acting_as
from loyalist.kit.wire import document_components

_AUTH_TTL_S = 10.0
_auth_cache: dict[str, tuple[float, Actor]] = {}
_auth_lock = threading.Lock()
# Routes that check the key's revocation inside their own transaction (see
# ``checks_key_in_unit``), and the cached actor whose check is still owed for this request.
_IN_UNIT: set[Callable[..., Any]] = set()
_owed_check: ContextVar[Actor | None] = ContextVar("loyalist_owed_key_check", default=None)


async def get_db(request: Request) -> Database:
    # async: FastAPI would run a plain function in a worker thread, a hop per request
    db: Database = request.app.state.db
    return db


E = TypeVar("E", bound=Callable[..., Any])


def checks_key_in_unit(endpoint: E) -> E:
    """Mark an endpoint whose every database access goes through :func:`read` or
    :func:`write`: for a key cached in this process, whether it has been revoked is then
    read inside the request's own transaction (before any write; a revoked key's write
    rolls back with the 401) instead of in a transaction of its own before it (speed,
    issue 11: one connection checkout and round trip fewer per request)."""
    _IN_UNIT.add(endpoint)
    return endpoint


def _check_owed(session: Session, actor: Actor | None) -> None:
    if actor is not None:
        access.check_not_revoked(session, actor)


def _presented_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def _cached(key: str) -> Actor | None:
    digest = sha256_hex(key)
    with _auth_lock:
        hit = _auth_cache.get(digest)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


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
        db.run(lambda s: access.check_not_revoked(s, actor), read_only=True, attempts=1)
        return actor
    actor = db.run(lambda s: access.authenticate(s, key), read_only=True, attempts=1)
    with _auth_lock:
        if len(_auth_cache) > 10_000:
            _auth_cache.clear()
        _auth_cache[digest] = (now + _AUTH_TTL_S, actor)
    return actor


def forget_cached_keys() -> None:
    with _auth_lock:
        _auth_cache.clear()


# The two ways to present the key, as the OpenAPI document declares them (its
# securitySchemes, and the security of every operation that depends on current_actor: added
# by openapi_document). The key itself is read by _presented_key (either header), and a
# missing or wrong key is a 401 problem. Not dependencies of current_actor: FastAPI would
# resolve and run both on every request only to read the headers _presented_key reads
# (speed, issue 11).
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="lk_…",
    description="An API key: `Authorization: Bearer lk_…`.",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKeyHeader",
    description="The same API key in the `X-API-Key` header.",
)


_KEY_SCHEMES: tuple[SecurityBase, ...] = (_bearer, _api_key_header)


async def current_actor(request: Request) -> Actor:
    key = _presented_key(request)
    if not key:
        raise Unauthorized("A valid API key is required (Authorization: Bearer lk_…).")
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and route.endpoint in _IN_UNIT:
        actor = _cached(key)
        if actor is not None:  # the revocation check is owed by the request's transaction
            _owed_check.set(actor)
            return actor
    _owed_check.set(None)  # (each request runs in a task of its own; this one owes none)
    db: Database = request.app.state.db
    return await run_in_threadpool(_authenticate, db, key)


DB = Annotated[Database, Depends(get_db)]
Caller = Annotated[Actor, Depends(current_actor)]
# Printable ASCII, no blank at either end (HTTP strips those), at most 255 characters.
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[!-~]([ -~]{0,253}[!-~])?$",
        description="Any unique string per intended write; the same key and body replay the "
        "first answer (with `Idempotent-Replayed: true`).",
    ),
]
# Ids in paths and filters, bounded by their columns (members: 32 bits; orders, redemptions:
# 64 bits) so an absurd id is a 422 on its field rather than a database error.
MemberId = Annotated[int, Path(ge=1, le=MAX_INT4)]
RecordId = Annotated[int, Path(ge=1, le=MAX_INT8)]
MemberFilterId = Annotated[int | None, Query(ge=1, le=MAX_INT4)]


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def created_or_found(result: tuple[bool, M]) -> tuple[int, M]:
    """201 when the write created its resource, 200 when it found the same one again."""
    created, answer = result
    return (201 if created else 200), answer


async def read(db: Database, fn: Callable[[Session], T], actor: Actor | None = None) -> T:
    """Run ``fn`` in one read-only transaction (its unit of work names ``actor`` when
    given): on SQLite it does not wait for writers. A key check owed by
    :func:`checks_key_in_unit` is made first, in the same transaction."""
    owed = _owed_check.get()
    if owed is None:
        return await run_in_threadpool(lambda: db.run(fn, actor=actor, read_only=True))

    def checked(session: Session) -> T:
        access.check_not_revoked(session, owed)
        return fn(session)

    return await run_in_threadpool(lambda: db.run(checked, actor=actor, read_only=True))


async def read_checking_key(db: Database, fn: Callable[[Session, Actor | None], T]) -> T:
    """:func:`read` for an ``fn`` that makes the key check :func:`checks_key_in_unit` owes
    itself, before anything else it answers (in its own first statement: speed, issue 11):
    ``fn`` is handed the actor whose check is owed (None: none is). ``fn``'s statements run
    without a transaction on PostgreSQL (``Database.run``'s ``autocommit``): its answer
    must be right with each statement on a snapshot of its own."""
    owed = _owed_check.get()
    return await run_in_threadpool(
        lambda: db.run(lambda s: fn(s, owed), read_only=True, autocommit=True)
    )


class FastJSONResponse(JSONResponse):
    """A JSON answer encoded by orjson (the same compact UTF-8 text as Starlette's
    ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``, several times faster);
    a value orjson refuses (an integer beyond 64 bits) falls back to the standard encoder."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:
            return super().render(content)


async def write(
    request: Request,
    db: Database,
    actor: Actor,
    key: str | None,
    work: Callable[[Session], tuple[int, BaseModel | dict[str, Any]]],
) -> JSONResponse:
    """Run a write once per Idempotency-Key in one transaction; answer only after commit.

    ``work`` answers a status and the operation's response schema; the JSON form of the
    schema is what is stored for replays and sent."""
    access.require_write(actor)
    body = await request.body()
    # fraud controls (issue 13) count requests per client address
    client_ip.set(request.client.host if request.client else None)

    def unit(session: Session) -> Answer:
        status, payload = work(session)
        if isinstance(payload, BaseModel):
            return Answer(status, payload.model_dump(mode="json", by_alias=True))
        return Answer(status, payload)

    owed = _owed_check.get()

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
                first=None if owed is None else lambda s: _check_owed(s, owed),
            )

    answer = await run_in_threadpool(call)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return FastJSONResponse(answer.body, status_code=answer.status, headers=headers)


# --- Lean request handling (speed, issue 11) ---------------------------------------------

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
_LEAN: set[Callable[..., Any]] = set()
#: The scope key under which the app's InputGuard hands on a JSON body it has parsed (to
#: refuse a key given twice): ``(the body, its value)``.
PARSED_BODY = "loyalist.parsed_body"


def _return_type(endpoint: Callable[..., Any]) -> Any:
    """The endpoint's return annotation, resolved in its module (only that one: the
    parameters' annotations may name things local to where it is defined)."""

    def probe() -> None: ...

    probe.__annotations__ = {"return": endpoint.__annotations__.get("return")}
    return get_type_hints(probe, globalns=getattr(endpoint, "__globals__", None)).get("return")


def lean(endpoint: E) -> E:
    """Mark an endpoint to be served by :class:`LeanRoute`'s lean handler: FastAPI's
    per-request dependency resolution (a recursive solve per dependency, four parameter
    passes each) and its answer plumbing are replaced by a plan made once per route. The
    endpoint must answer a ``Response`` (its own JSON), be a coroutine, and its dependencies
    must be coroutines taking only the request (``get_db``, ``current_actor``,
    ``refuse_unknown_query``); a route of another shape keeps FastAPI's handler."""
    answer = _return_type(endpoint)
    if not (isinstance(answer, type) and issubclass(answer, Response)):
        raise TypeError(f"{endpoint.__name__}: a lean endpoint answers a Response")
    _LEAN.add(endpoint)
    return endpoint


def _request_only(d: Dependant) -> bool:
    """A dependency the lean handler may call itself: a coroutine function whose only
    parameter is the request, with no dependencies or scopes of its own."""
    return (
        d.call is not None
        and inspect.iscoroutinefunction(d.call)
        and d.request_param_name is not None
        and not (d.path_params or d.query_params or d.header_params or d.cookie_params)
        and not (d.body_params or d.dependencies or d.own_oauth_scopes)
        and d.websocket_param_name is None
        and d.http_connection_param_name is None
        and d.response_param_name is None
        and d.background_tasks_param_name is None
        and d.security_scopes_param_name is None
        and d.concurrency is None
    )


def _lean_shape(route: Any) -> bool:
    d: Dependant = route.dependant
    return (
        d.call in _LEAN
        and inspect.iscoroutinefunction(d.call)
        and d.websocket_param_name is None
        and d.http_connection_param_name is None
        and d.response_param_name is None
        and d.background_tasks_param_name is None
        and d.security_scopes_param_name is None
        and not (
            route.body_field is not None and isinstance(route.body_field.field_info, params.Form)
        )
        and route.stream_item_field is None
        and not route.is_json_stream
        and all(_request_only(sub) for sub in d.dependencies)
    )


@lru_cache(maxsize=64)
def _json_media(content_type: str) -> bool:
    """Whether FastAPI reads a body with this Content-Type as JSON (its own test)."""
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


# A path, query, header or cookie parameter of one plain value: (field, its request key, loc).
ScalarParam = tuple[Any, str, tuple[str, str]]


def _scalar_params(fields: list[Any]) -> list[ScalarParam] | None:
    """``fields`` when every one is a plain value under one request key (no parameter
    model, no alias choices, no list, no ``Json``): read with ``.get`` and validated with
    FastAPI's own validation, as ``request_params_to_args`` does for such a field without
    inspecting its annotation on every request; ``None`` keeps FastAPI's function."""
    plan: list[ScalarParam] = []
    for field in fields:
        info = field.field_info
        aliases = fastapi_params._get_param_aliases(field)
        if (
            not isinstance(info, params.Param)
            or len(aliases) != 1
            or fastapi_params._get_param_model(field) is not None
            or fastapi_params._is_json_field(field)
            or field_annotation_is_sequence(info.annotation)
        ):
            return None
        key = aliases[0][1]
        plan.append((field, key, (info.in_.value, key)))
    return plan


def _solve_params(
    fields: list[Any], plan: list[ScalarParam] | None, source: Any, values: dict[str, Any]
) -> bool:
    """Validate ``fields`` from ``source`` into ``values``; False on any error."""
    if plan is None:
        found, wrong = request_params_to_args(fields, source)
        values.update(found)
        return not wrong
    for field, key, loc in plan:
        raw = source.get(key)
        value, wrong = fastapi_params._validate_value_with_model_field(
            field=field, value=Undefined if raw is None else raw, values={}, loc=loc
        )
        if wrong:
            return False
        values[field.name] = value
    return True


def _lean_handler(route: Any, full: Handler) -> Handler:
    """The request handler of a lean route: what FastAPI's handler does for this shape
    (read and decode the JSON body unless the app's InputGuard has (``PARSED_BODY``), call
    the dependencies in order, validate the path, query, header and body parameters with
    FastAPI's own functions, call the endpoint), without its per-request generality.
    Anything off the plain path (a body that is not JSON or does not decode, a parameter
    error, dependency overrides, OpenTelemetry data) is handed to FastAPI's handler, so
    errors are FastAPI's to the byte."""
    dependant: Dependant = route.dependant
    endpoint = dependant.call
    assert endpoint is not None
    subs: list[tuple[Callable[..., Awaitable[Any]], str | None, str, bool]] = [
        (s.call, s.name, s.request_param_name, s.use_cache)  # type: ignore[misc]
        for s in dependant.dependencies
    ]
    groups = [
        (fields, _scalar_params(fields), source)
        for fields, source in (
            (dependant.path_params, "path_params"),
            (dependant.query_params, "query_params"),
            (dependant.header_params, "headers"),
            (dependant.cookie_params, "cookies"),
        )
        if fields
    ]
    body_fields = dependant.body_params
    read_body = route.body_field is not None
    embed: bool = route._embed_body_fields
    request_name = dependant.request_param_name
    overrides = route.dependency_overrides_provider

    async def handle(request: Request) -> Response:
        if getattr(overrides, "dependency_overrides", None) or get_telemetry_data() is not None:
            return await full(request)
        body: Any = None
        if read_body:
            raw = await request.body()
            if not raw or not _json_media(request.headers.get("content-type") or ""):
                return await full(request)
            parsed = request.scope.get(PARSED_BODY)
            if parsed is not None and parsed[0] == raw:  # parsed once, by the InputGuard
                body = parsed[1]
            else:
                try:
                    body = await request.json()
                except ValueError:
                    return await full(request)
        values: dict[str, Any] = {}
        solved: dict[Any, Any] = {}
        for call, name, param, use_cache in subs:
            if use_cache and call in solved:
                value = solved[call]
            else:
                value = await call(**{param: request})
                solved.setdefault(call, value)
            if name is not None:
                values[name] = value
        # On any error FastAPI's handler answers (its exception, all the errors it finds)
        for fields, plan, source in groups:
            if not _solve_params(fields, plan, getattr(request, source), values):
                return await full(request)
        if body_fields:
            found, wrong = await request_body_to_args(
                body_fields=body_fields, received_body=body, embed_body_fields=embed
            )
            if wrong:
                return await full(request)
            values.update(found)
        if request_name is not None:
            values[request_name] = request
        answer = await endpoint(**values)
        if not isinstance(answer, Response):
            raise TypeError(f"{endpoint.__name__}: a lean endpoint answers a Response")
        return answer

    return handle


class LeanRoute(APIRoute):
    """An ``APIRoute`` whose endpoints marked :func:`lean` get the lean handler (per
    inclusion, with the dependencies the including router adds); other routes are
    FastAPI's as they are. The OpenAPI document is made from the same route state."""

    def get_route_handler(self) -> Handler:
        full = super().get_route_handler()
        if self.endpoint not in _LEAN:
            return full
        # FastAPI builds the handler of an included route with that inclusion's context
        # (prefix, router dependencies) in a context variable; the same one is read here.
        context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
        context = context_var.get() if context_var is not None else None
        route: Any = context if context is not None and context.original_route is self else self
        return _lean_handler(route, full) if _lean_shape(route) else full


# --- The API contract -------------------------------------------------------------------

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    """One field at fault: where, what, and a stable code."""

    field: str = Field(description="the field or parameter, dotted for nested body fields")
    message: str
    code: str


class Problem(BaseModel):
    """RFC 9457 problem details with a stable ``code`` (and field errors where fields are at
    fault). Some problems add members of their own (e.g. ``approval_request_id``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URI naming the problem type")
    title: str
    status: int
    code: str = Field(description="stable machine-readable code")
    detail: str
    instance: str | None = Field(default=None, description="the request path")
    errors: list[FieldProblem] | None = None


_STATUS_TEXT = {
    400: "A body the JSON parser gives up on (nested too deeply)",
    401: "No API key, or a key that is unknown, revoked or expired",
    403: "The key may not do this (read-only key, missing permission)",
    404: "Not found, or outside the caller's scope",
    405: "Method not allowed (the `Allow` header lists the methods)",
    409: "Conflict with the current state, or the same Idempotency-Key still in progress",
    413: "The body is too large",
    415: "The body is not JSON",
    422: "Invalid input: a field, a query parameter (unknown parameters included) or the JSON",
    429: "Too many requests (`Retry-After` says when to try again)",
    503: (
        "The database is unreachable, or the server is at its limit of requests in progress"
        " (`overloaded`); nothing was written: try again after `Retry-After` seconds"
    ),
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_ALLOW = {
    "Allow": {"description": "the methods the resource accepts", "schema": {"type": "string"}}
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries: each status answered as problem+json.

    ``@router.get(..., responses=problem_responses(404, 409))``. The statuses every API
    operation shares (401/403 when it needs a key, 422, 503, 400/413/415 with a body) are added
    by :func:`openapi_document`; list here what the operation itself can answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _STATUS_TEXT.get(status, "Problem"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status in (429, 503):
            entry["headers"] = dict(_RETRY_AFTER)
        if status == 405:
            entry["headers"] = dict(_ALLOW)
        out[status] = entry
    return out


def _uses(dependant: Dependant, call: Callable[..., Any]) -> bool:
    stack = [dependant]
    while stack:
        d = stack.pop()
        if d.call is call:
            return True
        stack.extend(d.dependencies)
    return False


def _declared_query(dependant: Dependant) -> frozenset[str]:
    """The query parameter names an operation declares, its dependencies' included."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        for f in d.query_params:
            annotation = f.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names.update(fi.alias or name for name, fi in annotation.model_fields.items())
            else:
                names.add(f.alias)
        stack.extend(d.dependencies)
    return frozenset(names)


_DECLARED = "_loyalist_declared_query"


async def refuse_unknown_query(request: Request) -> None:
    """422 naming each query parameter the operation does not declare.

    Installed on the /v1 router, so every operation (new ones included) is covered: the
    allowed names are read from the matched route's own declaration. A missing API key is
    still answered 401 first."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed: frozenset[str] | None = vars(route).get(_DECLARED)
    if allowed is None:  # computed once per route, kept on the route itself
        allowed = vars(route)[_DECLARED] = _declared_query(route.dependant)
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if not unknown:
        return
    if _uses(route.dependant, current_actor):
        await current_actor(request)
        owed = _owed_check.get()
        if owed is not None:  # a revoked key is a 401 here too, not a 422
            db: Database = request.app.state.db
            await read(db, lambda _s: None)
    accepted = ", ".join(sorted(allowed)) or "none"
    raise ValidationFailed(
        f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
        f"(this operation accepts: {accepted}).",
        [FieldError(k, "unknown query parameter", "unknown_parameter") for k in unknown],
    )


def _problem_ref(status: int) -> dict[str, Any]:
    return problem_responses(status)[status]


# What FastAPI writes of an operation before its security (get_openapi_path: the metadata,
# then the security, then parameters, body, callbacks, responses).
_OPERATION_METADATA = frozenset(
    ("tags", "summary", "description", "externalDocs", "operationId", "deprecated")
)


def _with_key_security(app: FastAPI, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (FastAPI's document) with the API key's schemes, and ``security`` on every
    operation whose dependencies include :func:`current_actor`, placed and encoded as FastAPI
    places and encodes those of a security dependency (the same document, to the byte, as
    when ``current_actor`` depended on the schemes)."""
    keyed: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and _uses(context.dependant, current_actor):
            path = context.path_format or route.path_format
            keyed.update((path, m.lower()) for m in context.methods or ())
    if not keyed:
        return doc
    security: list[dict[str, list[str]]] = [{scheme.scheme_name: []} for scheme in _KEY_SCHEMES]
    for path, path_item in doc.get("paths", {}).items():
        for method, op in list(path_item.items()):
            if (path, method) not in keyed:
                continue
            placed: dict[str, Any] = {}
            for name, value in op.items():
                if name not in _OPERATION_METADATA and "security" not in placed:
                    placed["security"] = security
                placed[name] = value
            placed.setdefault("security", security)
            path_item[method] = placed
    schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
    for scheme in _KEY_SCHEMES:
        schemes[scheme.scheme_name] = jsonable_encoder(
            scheme.model, by_alias=True, exclude_none=True
        )
    encoded: dict[str, Any] = jsonable_encoder(OpenAPI(**doc), by_alias=True, exclude_none=True)
    return encoded


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document as the server really answers.

    Every operation: its response schema (declared on the route), 422 as problem+json
    (FastAPI's HTTPValidationError shape is never sent), 503 with Retry-After, 401/403 when
    it needs a key, 400/413/415 when it takes a body, 409 when it takes an Idempotency-Key,
    404 when its path names a resource."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    doc = _with_key_security(app, doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    schemas.update(document_components())
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path_item in doc.get("paths", {}).values():
        for method, op in path_item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            for status, entry in list(responses.items()):
                content = entry.get("content", {})
                ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if status == "422" or ref.endswith("/HTTPValidationError"):
                    responses[status] = _problem_ref(int(status))
            add = [422, 503]
            if op.get("security"):
                add += [401, 403]
            if "requestBody" in op:
                add += [400, 413, 415]
            params = op.get("parameters", [])
            if any(p.get("in") == "header" and p.get("name") == "Idempotency-Key" for p in params):
                add.append(409)
            if any(p.get("in") == "path" for p in params):
                add.append(404)  # a resource named in the path may not exist (or be in scope)
            for status in add:
                responses.setdefault(str(status), _problem_ref(status))
            op["responses"] = dict(sorted(responses.items()))
    app.openapi_schema = doc
    return doc
