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
before (a redirect to the path with or without its trailing slash, 404).

An included router's routes are built lazily by FastAPI (each route's effective context:
its dependencies, body and response fields, under the inclusion's prefix) the first time a
walk reaches them; a walk of everything, as the index's own first rebuild was, builds them
all: some 3 MB per worker for the console's and member pages' routes an API worker never
serves. The application's included routers are therefore replaced by :class:`_LazyInclusion`,
which builds a route's context when a walk first needs it and keeps it: the index reads a
route's literal prefix from its path and inclusion, builds only the contexts of the routes
a request's prefix keeps, and FastAPI's own walk, the OpenAPI document and ``url_for`` take
the same objects later (memory, issue 11)."""

from __future__ import annotations

import copy
import operator
import threading
from typing import Any

from fastapi.routing import APIRoute, APIRouter, _EffectiveRouteContext, _IncludedRouter
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Mount, Route
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


class _LazyInclusion(_IncludedRouter):
    """An included router whose routes' effective contexts (and included routers' branches)
    are built one at a time, when first asked for, and kept: the same object for the same
    route whoever asks (the index for one prefix, FastAPI's walk, the OpenAPI document)."""

    def __init__(self, original_router: APIRouter, include_context: Any) -> None:
        super().__init__(original_router=original_router, include_context=include_context)
        self._built: dict[int, tuple[BaseRoute, Any]] = {}
        self._built_lock = threading.Lock()

    def context(self, route: BaseRoute) -> Any:
        """``route``'s candidate here, as FastAPI's ``effective_candidates`` builds it (a
        branch for an included router, ``None`` for a kind of route it skips)."""
        entry = self._built.get(id(route))
        if entry is None or entry[0] is not route:
            with self._built_lock:
                entry = self._built.get(id(route))
                if entry is None or entry[0] is not route:
                    if isinstance(route, _IncludedRouter):
                        made: Any = _LazyInclusion(
                            route.original_router,
                            self.include_context.combine(route.include_context),
                        )
                    else:
                        made = self._build_effective_context(route)
                    entry = (route, made)
                    self._built[id(route)] = entry
        return entry[1]

    def literal(self, route: BaseRoute) -> str:
        """:func:`_literal` of ``route``'s context here, without building it for a FastAPI
        route (its context's path is the inclusion's prefix and the route's path)."""
        if isinstance(route, APIRoute):
            if type(route).matches is APIRoute.matches:
                return self.include_context.path_for(route).split("{", 1)[0]
            return ""
        made = self.context(route)
        return "" if made is None else _literal(made)

    def effective_candidates(self) -> list[Any]:
        version = self.original_router._get_routes_version()
        if version == self._effective_candidates_version:
            return self._effective_candidates
        with self._effective_routes_lock:
            candidates = [self.context(route) for route in self.original_router.routes]
            self._effective_candidates = [c for c in candidates if c is not None]
            self._effective_candidates_version = version
            return self._effective_candidates


def _lazy(routes: list[Any]) -> None:
    """Each router FastAPI included in ``routes`` (an application's) as a _LazyInclusion."""
    for i, route in enumerate(routes):
        if type(route) is _IncludedRouter:
            routes[i] = _LazyInclusion(route.original_router, route.include_context)


def _literals(routes: list[Any], into: set[str]) -> None:
    for route in routes:
        if isinstance(route, _LazyInclusion):
            for inner in route.original_router.routes:
                if isinstance(inner, _IncludedRouter):
                    _literals([route.context(inner)], into)
                else:
                    into.add(route.literal(inner))
        elif isinstance(route, _IncludedRouter):
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
        if isinstance(route, _LazyInclusion):
            inner = []
            for candidate in route.original_router.routes:
                if isinstance(candidate, _IncludedRouter):
                    inner += _prune([route.context(candidate)], prefix)
                elif prefix.startswith(route.literal(candidate)):
                    made = route.context(candidate)
                    if made is not None:
                        inner.append(made)
            if inner:
                kept.append(_PrunedInclusion(route, inner))
        elif isinstance(route, _IncludedRouter):
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
        _lazy(self.router.routes)
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
