"""Wake the worker loop early: work became available in this process.

The worker sleeps ``poll_interval`` seconds between idle loops; :func:`notify` (called when
events get their stream positions, say) ends that sleep at once, so an in-process change
reaches the consumers in milliseconds instead of at the next tick. Work made by other
processes is still found by the regular polling.
"""

from __future__ import annotations

import threading
import time

_ready = threading.Event()
_SLICE_S = 0.05


def notify() -> None:
    """Something for the worker to do is there now."""
    _ready.set()


def wait(stop: threading.Event, timeout: float) -> bool:
    """Sleep up to ``timeout`` seconds, less if :func:`notify` is called or ``stop`` is set.
    True when woken by :func:`notify`."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if _ready.wait(min(_SLICE_S, left)):
            _ready.clear()
            return True
    return False
