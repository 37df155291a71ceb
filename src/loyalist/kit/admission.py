"""Admission control: a bounded number of requests in progress per server process.

Under a peak (双11, a member day) more requests arrive than the database can take. Without a
bound they queue in the server (threads, then the connection pool) until every answer is
late and clients time out and retry, which adds load. With it, a process handles at most
``limit`` requests at once; a request that finds no free slot waits up to ``wait_s`` for one
and is otherwise answered with ``503`` problem+json and ``Retry-After`` — nothing was
written, and the same request (with its Idempotency-Key) may be sent again.

**A bounded wait.** At most ``max_waiting`` requests wait for a slot at once. A request that
arrives when that many already wait is refused at once (no wait): under a backlog a refusal
costs microseconds of the event loop instead of ``wait_s`` of the client's time plus a held
connection, and the refused traffic does not take over the server.

**Retry-After grows with pressure.** The process counts, per second, the requests it refused
and the admitted requests it finished (served), over the last ``window_s`` seconds. A refusal
says

    Retry-After = clamp(ceil(refused / max(served, 1)), retry_after_s, retry_after_max_s)

that is: if this process refused ``k`` times what it served lately, the refused demand of one
second, spread over ``k`` seconds, arrives at about the rate it serves. With no pressure (a
refusal or two among many served) it stays at ``retry_after_s`` (1 s); at run A's peak of
session 9 (600 refusals/s against 60 served/s) it would be 10 s; it never exceeds
``retry_after_max_s`` (30 s, the terminals' own backoff cap). Counting is per process and
per whole second (a ring of ``window_s`` buckets), so a refusal costs O(window_s) additions.

Paths in ``exempt`` (health checks, static files) are never held back.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Pressure:
    """Refusals and completions per whole second over the last ``window_s`` seconds."""

    def __init__(self, window_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        if window_s < 1:
            raise ValueError("window_s must be at least 1")
        self.window_s = window_s
        self.clock = clock
        # bucket i holds second s with s % window_s == i: [s, refused, served]
        self._buckets = [[-1, 0, 0] for _ in range(window_s)]

    def _bucket(self) -> list[int]:
        second = int(self.clock())
        bucket = self._buckets[second % self.window_s]
        if bucket[0] != second:
            bucket[0], bucket[1], bucket[2] = second, 0, 0
        return bucket

    def refused(self) -> None:
        self._bucket()[1] += 1

    def served(self) -> None:
        self._bucket()[2] += 1

    def totals(self) -> tuple[int, int]:
        """(refused, served) in the current second and the ``window_s - 1`` before it."""
        now = int(self.clock())
        refused = served = 0
        for second, r, s in self._buckets:
            if 0 <= now - second < self.window_s:
                refused += r
                served += s
        return refused, served


class Admission:
    """ASGI middleware: at most ``limit`` HTTP requests in progress, at most ``max_waiting``
    waiting up to ``wait_s`` for a slot, the rest 503 at once with a ``Retry-After`` that
    grows with the ratio of refused to served requests (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        wait_s: float,
        max_waiting: int | None = None,
        retry_after_s: int = 1,
        retry_after_max_s: int = 30,
        window_s: int = 2,
        exempt: tuple[str, ...] = ("/healthz", "/static/"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if max_waiting is not None and max_waiting < 0:
            raise ValueError("max_waiting must not be negative")
        if not 1 <= retry_after_s <= retry_after_max_s:
            raise ValueError("need 1 <= retry_after_s <= retry_after_max_s")
        self.app = app
        self.limit = limit
        self.wait_s = wait_s
        self.max_waiting = limit if max_waiting is None else max_waiting
        self.retry_after_s = retry_after_s
        self.retry_after_max_s = retry_after_max_s
        self.exempt = exempt
        self.pressure = Pressure(window_s, clock)
        self._slots: asyncio.Semaphore | None = None
        self.waiting = 0  # requests waiting for a slot now
        self.refused = 0  # answered 503 since start (for tests and operators)
        self.refused_at_once = 0  # of which without waiting (the wait queue was full)

    @property
    def in_progress(self) -> int:
        return 0 if self._slots is None else self.limit - self._slots._value

    def retry_after(self) -> int:
        """Seconds a refused client should wait: refused ÷ served lately, clamped."""
        refused, served = self.pressure.totals()
        ratio = math.ceil(refused / max(served, 1))
        return min(self.retry_after_max_s, max(self.retry_after_s, ratio))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # created in the server's event loop
            self._slots = asyncio.Semaphore(self.limit)
        slots = self._slots
        if slots.locked():  # no free slot
            if self.waiting >= self.max_waiting:  # nor room to wait: refuse at once
                self.refused_at_once += 1
                await self._refuse(scope, send)
                return
            self.waiting += 1
            try:  # wait a bounded time for a slot
                await asyncio.wait_for(slots.acquire(), timeout=self.wait_s)
            except TimeoutError:
                await self._refuse(scope, send)
                return
            finally:
                self.waiting -= 1
        else:  # a free slot, taken at once (wait_for would start a task per request)
            await slots.acquire()
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()
            self.pressure.served()

    async def _refuse(self, scope: Scope, send: Send) -> None:
        self.refused += 1
        self.pressure.refused()
        retry_after = self.retry_after()
        body = json.dumps(
            {
                "type": "https://loyalist.dev/problems/overloaded",
                "title": "The server is busy",
                "status": 503,
                "code": "overloaded",
                "detail": (
                    f"{self.limit} requests are in progress; nothing was written. Try again "
                    f"after {retry_after} s with the same Idempotency-Key."
                ),
                "instance": str(scope.get("path", "")),
                "retry_after": retry_after,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
