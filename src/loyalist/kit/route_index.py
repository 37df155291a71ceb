"""Route lookup by literal path prefix (speed, issue 11).

Starlette's router tries an application's routes one by one, and FastAPI walks each included
router's routes twice (once to match, once again to handle the match): with a few hundred
routes (API, console, member pages) that walk was about a fifth of the event-loop thread's
time on an order. :func:`index_routes` makes the application's router try only the routes
that can match a request's path, in their original order, through FastAPI's own matching
and handling code: the answer is the one the full walk gives.

A route's path can only match a request path that starts with its literal prefix (the text
before its first ``{``; a Mount's path and ``/``), since Starlette's path patterns are
anchored at the start and spell that text out. For the longest literal prefix a request
path starts with, the routes are kept whose prefix it starts with (with every route whose
path is not known, e.g. a Host), included routers pruned to those routes, in the same
order. A request that matches none of them is handed to the full walk, which answers as
before (a redirect to the path with or without its trailing slash, 404)."""

from __future__ import annotations

import copy
import operator
from typing import Any

from fastapi.routing import APIRoute, APIRouter, _EffectiveRouteContext, _IncludedRouter
from starlette._utils import get_route_path
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

_VERSION = operator.attrgetter("_routes_version")
# Route classes whose ``matches`` is a regular expression anchored at the path's start.
_ANCHORED = (Route.matches, APIRoute.matches, Mount.matches)


def _literal(route: Any) -> str:
    """The text every request path this route (or included-route candidate) can match
    starts with; ``""`` when that is not known."""
    if isinstance(route, _EffectiveRouteContext):
        if route.starlette_route is not None:
            return _literal(route.starlette_route)
        original = route.original_route
        if isinstance(original, APIRoute) and type(original).matches is APIRoute.matches:
            return route.path_format.split("{", 1)[0]  # its inclusion's (prefixed) pattern
        return ""
    if getattr(type(route), "matches", None) in _ANCHORED:
        path_format: str = route.path_format
        return path_format.split("{", 1)[0]
    return ""


def _literals(routes: list[Any], into: set[str]) -> None:
    for route in routes:
        if isinstance(route, _IncludedRouter):
            _literals(route.effective_candidates(), into)
        else:
            into.add(_literal(route))


class _PrunedInclusion(_IncludedRouter):
    """An included router that tries only some of its candidates (the same route contexts,
    so the same handlers); what no candidate here matches is the full walk's to answer."""

    def __init__(self, inclusion: _IncludedRouter, candidates: list[Any]) -> None:
        super().__init__(
            original_router=inclusion.original_router, include_context=inclusion.include_context
        )
        self._kept = candidates

    def effective_candidates(self) -> list[Any]:
        return self._kept

    def effective_low_priority_routes(self) -> list[_EffectiveRouteContext]:
        return []


def _prune(routes: list[Any], prefix: str) -> list[Any]:
    """``routes`` that may match a path whose longest literal prefix is ``prefix``."""
    kept: list[Any] = []
    for route in routes:
        if isinstance(route, _IncludedRouter):
            inner = _prune(route.effective_candidates(), prefix)
            if inner:
                kept.append(_PrunedInclusion(route, inner))
        elif prefix.startswith(_literal(route)):
            kept.append(route)
    return kept


def _routers(router: APIRouter, into: list[APIRouter]) -> None:
    into.append(router)
    for route in router.routes:
        if isinstance(route, _IncludedRouter):
            _routers(route.original_router, into)


class RouteIndex:
    """The dispatch of an application's router (in place of its full walk)."""

    def __init__(self, router: APIRouter, full: ASGIApp) -> None:
        self.router = router
        self.full = full
        self._signature: tuple[int, ...] | None = None
        self._routers: list[APIRouter] = []
        self._lengths: list[tuple[int, frozenset[str]]] = []
        self._buckets: dict[str, APIRouter] = {}

    def _current(self) -> tuple[int, ...]:
        """What changes when a route is added: the routers' versions (as FastAPI reads them
        for an included router's routes) and the number of the application's own routes
        (its walk reads that list itself)."""
        return (len(self.router.routes), *map(_VERSION, self._routers))

    def _rebuild(self) -> None:
        routers: list[APIRouter] = []
        _routers(self.router, routers)
        self._routers = routers
        literals: set[str] = set()
        _literals(self.router.routes, literals)
        by_length: dict[int, set[str]] = {}
        for literal in literals:
            by_length.setdefault(len(literal), set()).add(literal)
        self._lengths = [(n, frozenset(by_length[n])) for n in sorted(by_length, reverse=True)]
        self._buckets = {}
        self._signature = self._current()

    def _bucket(self, path: str) -> APIRouter:
        prefix = ""
        size = len(path)
        for n, literals in self._lengths:
            if n <= size and path[:n] in literals:
                prefix = path[:n]
                break
        bucket = self._buckets.get(prefix)
        if bucket is None:
            bucket = copy.copy(self.router)
            bucket.routes = _prune(self.router.routes, prefix)
            bucket.redirect_slashes = False  # the full walk redirects
            bucket._low_priority_routes = []
            bucket.default = self.full
            self._buckets[prefix] = bucket
        return bucket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.full(scope, receive, send)
            return
        if self._signature is None or self._current() != self._signature:
            self._rebuild()
        bucket = self._bucket(get_route_path(scope))
        if "router" not in scope:
            scope["router"] = self.router  # url_for names every route
        await bucket.app(scope, receive, send)


def index_routes(router: APIRouter) -> None:
    """Make ``router`` (an application's) try only the routes that can match a request's
    path. Its routes may still change afterwards: the index is rebuilt when they do."""
    if router.middleware_stack != router.app:  # router middleware: left to the full walk
        return
    router.middleware_stack = RouteIndex(router, router.app)
