"""An injectable clock: code asks it for "now" so tests and demos can move time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall clock with an optional offset (used by tests and the demo's time travel)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._frozen: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC) + self._offset

    def freeze(self, at: datetime) -> None:
        ensure_aware(at)
        with self._lock:
            self._frozen = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += delta
            else:
                self._offset += delta

    def reset(self) -> None:
        with self._lock:
            self._frozen = None
            self._offset = timedelta(0)

    def snapshot(self) -> tuple[datetime | None, timedelta]:
        """The clock's state, to :meth:`restore` after a stretch of time travel."""
        with self._lock:
            return self._frozen, self._offset

    def restore(self, state: tuple[datetime | None, timedelta]) -> None:
        with self._lock:
            self._frozen, self._offset = state


clock = Clock()


def utcnow() -> datetime:
    return clock.now()


def ensure_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: times must carry a UTC offset")
    return value


def as_utc(value: datetime) -> datetime:
    """Normalise to UTC; naive values read back from SQLite are UTC by construction."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
