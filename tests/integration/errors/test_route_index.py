"""Route lookup by literal path prefix (speed, issue 11): the application's router tries
only the routes that can match a request's path, and picks what the full walk picks (the
same route, or the same partial match, or nothing), so every answer is the same."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import _IncludedRouter, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Match

from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.kit.db import Database
from loyalist.kit.route_index import RouteIndex

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
TRICKY = (
    "",
    "/",
    "//",
    "/nope",
    "/v1",
    "/v1/",
    "/v1/orders/",
    "/v1/orders/quote",
    "/v1/orders/quote/",
    "/v1/orders/12/returns/",
    "/v1/members/a/b",
    "/v1/members/1/",
    "/v1/members/1/ledger/extra",
    "/V1/orders",
    "/m",
    "/m/",
    "/mx",
    "/admin",
    "/admin/",
    "/admin/members/1/",
    "/static",
    "/static/",
    "/static/swagger-ui/swagger-ui.css",
    "/static/../app.py",
    "/docs/",
    "/healthz/",
    "/openapi.json/",
)


def _scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }


def _choice(routes: list[Any], method: str, path: str) -> tuple[Any, ...]:
    """What a router walking ``routes`` picks: the first full match, else the first partial
    one, down to the route an included router picks (with its context and scope)."""
    scope = _scope(method, path)
    picked: tuple[Match, Any, dict[str, Any]] | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            picked = (match, route, child)
            break
        if match == Match.PARTIAL and picked is None:
            picked = (match, route, child)
    if picked is None:
        return (Match.NONE,)
    match, route, child = picked
    context = None
    while isinstance(route, _IncludedRouter):
        match, child, route, context = route._match(scope)
    return match, route, context, child


def _paths(app: FastAPI) -> list[str]:
    """Every route's path (its parameters as a number, a word and two segments), with and
    without a trailing slash, and the tricky ones."""
    paths: set[str] = set(TRICKY)
    for context in iter_route_contexts(app.router.routes):
        path_format = context.path_format
        if not isinstance(path_format, str):
            continue
        for value in ("1", "abc", "a/b"):
            path = path_format
            for name in context.param_convertors or {}:
                path = path.replace("{" + name + "}", value)
            paths.update((path, path.rstrip("/") or "/", path + "/", path + "x"))
    return sorted(paths)


async def _n(n: int) -> dict[str, int]:
    return {"n": n}


def test_every_route_is_picked_as_the_full_walk_picks_it() -> None:
    app = create_app(Settings(database_url="sqlite://"), db=Database("sqlite://"))
    # and routers included with a prefix, one inside the other
    inner, outer = APIRouter(prefix="/inner"), APIRouter(prefix="/extra")
    inner.add_api_route("/{n}", _n, methods=["GET"])
    outer.include_router(inner)
    outer.add_api_route("/inner/{n}", _n, methods=["POST"])
    outer.add_api_route("/{n}", _n, methods=["PUT"])
    app.include_router(outer)
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    index._rebuild()
    paths = _paths(app)
    assert len(paths) > 1000
    picked: dict[Match, int] = {Match.FULL: 0, Match.PARTIAL: 0, Match.NONE: 0}
    for path in paths:
        bucket = index._bucket(path).routes
        for method in METHODS:
            plain = _choice(app.router.routes, method, path)
            indexed = _choice(bucket, method, path)
            assert indexed == plain, (method, path)
            picked[plain[0]] += 1
    assert min(picked.values()) > 500, picked  # routes, wrong methods and no route all seen
    # an order tries three routes (the two at its path, in their order, and the member
    # page's "/"), not the application's 250 or so
    assert len(list(iter_route_contexts(app.router.routes))) > 200
    tried = [
        (c.path_format, sorted(c.methods or ()))
        for c in iter_route_contexts(index._bucket("/v1/orders").routes)
    ]
    assert tried == [("/v1/orders", ["POST"]), ("/v1/orders", ["GET"]), ("/", ["GET"])]


def _answer(r: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in r.headers.items() if k not in ("date", "etag"))
    return r.status_code, headers, r.content


@pytest.fixture
def both(db: Database) -> Any:
    """Send a request through the index, then through the full walk of the same app."""
    app = create_app(Settings(database_url=db.url), db=db)
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)

    def send(method: str, path: str) -> tuple[Any, Any]:
        app.router.middleware_stack = index
        indexed = client.request(method, path)
        app.router.middleware_stack = app.router.app
        plain = client.request(method, path)
        app.router.middleware_stack = index
        return indexed, plain

    with client:
        yield send, app


def test_answers_are_the_full_walk_s_to_the_byte(both: Any) -> None:
    send, _app = both
    for path in (*TRICKY[1:], "/healthz", "/docs", "/v1/orders", "/v1/members/1", "/m/"):
        for method in ("GET", "POST", "DELETE"):
            indexed, plain = send(method, path)
            assert _answer(indexed) == _answer(plain), (method, path)


def test_404_405_and_slash_redirect_answers(both: Any) -> None:
    send, _app = both
    r, _ = send("GET", "/nope")
    assert (r.status_code, r.headers["content-type"]) == (404, "application/problem+json")
    assert r.content == (
        b'{"type":"https://loyalist.dev/problems/not-found","title":"Not Found",'
        b'"status":404,"code":"not_found","detail":"Not Found","instance":"/nope"}'
    )
    r, _ = send("DELETE", "/v1/orders")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, POST")
    assert r.content == (
        b'{"type":"https://loyalist.dev/problems/method-not-allowed",'
        b'"title":"Method Not Allowed","status":405,"code":"method_not_allowed",'
        b'"detail":"Method Not Allowed","instance":"/v1/orders"}'
    )
    r, _ = send("GET", "/healthz/")
    assert (r.status_code, r.headers["location"]) == (307, "http://testserver/healthz")
    r, _ = send("GET", "/static/swagger-ui/swagger-ui.css")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/css")


def test_a_route_added_later_is_found(both: Any) -> None:
    send, app = both
    assert send("GET", "/healthz")[0].status_code == 200  # the index is built

    @app.post("/healthz")  # after GET /healthz: POST is no longer a wrong method
    async def _post_health() -> dict[str, str]:
        return {"posted": "yes"}

    @app.get("/late/{n}")
    async def _late(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/later/")
    async def _later() -> dict[str, str]:
        return {"at": "later"}

    indexed, plain = send("POST", "/healthz")
    assert (indexed.status_code, indexed.json()) == (200, {"posted": "yes"})
    assert _answer(indexed) == _answer(plain)
    indexed, plain = send("GET", "/late/7")
    assert (indexed.status_code, indexed.json()) == (200, {"n": 7})
    assert _answer(indexed) == _answer(plain)
    # no route can match "/later": the full walk answers, with a redirect to "/later/"
    indexed, plain = send("GET", "/later")
    assert (indexed.status_code, indexed.headers["location"]) == (307, "http://testserver/later/")
    assert _answer(indexed) == _answer(plain)


def test_a_request_builds_only_the_route_contexts_its_path_may_match() -> None:
    """issue 11, memory: the index's first request no longer builds every included route's
    context (its fields and dependencies, ~3 MB per worker for routes an API worker never
    serves); FastAPI's walk and the OpenAPI document later take the same objects."""
    from loyalist.kit.route_index import _LazyInclusion

    app = create_app(Settings(database_url="sqlite://"), db=Database("sqlite://"))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        client.post("/v1/orders", json={})

        def built() -> int:
            inclusions = [r for r in app.router.routes if isinstance(r, _LazyInclusion)]
            assert len(inclusions) > 20
            return sum(
                1 for i in inclusions for _route, made in i._built.values() if made is not None
            )

        assert built() < 10  # the two routes at /v1/orders and the member page's "/"
        first = [c._route_context for c in iter_route_contexts(app.router.routes)]
        assert built() > 200  # all of them now, through FastAPI's own walk
        again = [c._route_context for c in iter_route_contexts(app.router.routes)]
        assert len(again) == len(first) > 200
        assert all(a is b for a, b in zip(again, first, strict=True))
        assert client.get("/openapi.json").status_code == 200
