"""Running a coroutine from a synchronous test."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def run_in_fresh_loop(coro: Coroutine[Any, Any, Any]) -> None:
    """Run ``coro`` in a fresh event loop on its own thread (a test before this one may have
    left an event loop running on the main thread: Playwright's sync API does)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()
