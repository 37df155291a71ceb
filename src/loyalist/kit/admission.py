"""Admission control: a bounded number of requests in progress per server process.

Under a peak (双11, a member day) more requests arrive than the database can take. Without a
bound they queue in the server (threads, then the connection pool) until every answer is
late and clients time out and retry, which adds load. With it, a process handles at most
``limit`` requests at once; a request that finds no free slot waits up to ``wait_s`` for one
and is otherwise answered at once with ``503`` problem+json and ``Retry-After`` — nothing was
written, and the same request (with its Idempotency-Key) may be sent again.

Paths in ``exempt`` (health checks, static files) are never held back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Admission:
    """ASGI middleware: at most ``limit`` HTTP requests in progress, a bounded wait for a
    slot, then 503 with ``Retry-After: retry_after_s``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        wait_s: float,
        retry_after_s: int = 1,
        exempt: tuple[str, ...] = ("/healthz", "/static/"),
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.app = app
        self.limit = limit
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        self.exempt = exempt
        self._slots: asyncio.Semaphore | None = None
        self.refused = 0  # answered 503 since start (for tests and operators)

    @property
    def in_progress(self) -> int:
        return 0 if self._slots is None else self.limit - self._slots._value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # created in the server's event loop
            self._slots = asyncio.Semaphore(self.limit)
        slots = self._slots
        if slots.locked():  # no free slot: wait a bounded time for one
            try:
                await asyncio.wait_for(slots.acquire(), timeout=self.wait_s)
            except TimeoutError:
                self.refused += 1
                await self._refuse(scope, send)
                return
        else:  # a free slot, taken at once (wait_for would start a task per request)
            await slots.acquire()
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps(
            {
                "type": "https://loyalist.dev/problems/overloaded",
                "title": "The server is busy",
                "status": 503,
                "code": "overloaded",
                "detail": (
                    f"{self.limit} requests are in progress; nothing was written. Try again "
                    f"after {self.retry_after_s} s with the same Idempotency-Key."
                ),
                "instance": str(scope.get("path", "")),
                "retry_after": self.retry_after_s,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after_s).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
