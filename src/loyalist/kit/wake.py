"""Wake the worker loop early: work became available.

The worker sleeps ``poll_interval`` seconds between idle loops; :func:`notify` (called when
events get their stream positions, say) ends that sleep at once, so an in-process change
reaches the consumers in milliseconds instead of at the next tick.

Across processes (API processes and separate workers on one PostgreSQL) the same happens
through PostgreSQL's LISTEN/NOTIFY: a transaction that makes work (positions events, queues
a job due now) calls :func:`notify_in` and PostgreSQL delivers one notification on the
channel :data:`CHANNEL` when it commits (several in one transaction collapse into one);
every worker runs :func:`listen`, a thread that turns each notification into
:func:`notify`. Polling stays as the backstop (a notification lost while a listener
reconnects costs one poll interval, nothing more). SQLite has no such channel: there, work
made by other processes is found by polling.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

log = logging.getLogger("loyalist.wake")

CHANNEL = "loyalist_wake"
_ready = threading.Event()
_SLICE_S = 0.05
_NOTIFIED = "loyalist.wake.notified"


def notify() -> None:
    """Something for the worker to do is there now."""
    _ready.set()


def notify_in(session: Session) -> None:
    """Wake the workers of every process when ``session``'s transaction commits
    (PostgreSQL; once per transaction; nothing on SQLite or on rollback)."""
    if session.info.get(_NOTIFIED) or session.get_bind().dialect.name != "postgresql":
        return
    notify_on(session.connection())
    session.info[_NOTIFIED] = True


def notify_on(conn: Connection) -> None:
    """Wake the workers of every process when ``conn``'s transaction commits (PostgreSQL;
    nothing on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_NOTIFIED, None)  # the session's next transaction notifies again


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


def listen(url: URL, stop: threading.Event) -> threading.Thread | None:
    """Start a daemon thread that LISTENs on :data:`CHANNEL` and calls :func:`notify` for
    every notification until ``stop`` is set (within a second). None for a database other
    than PostgreSQL."""
    if url.get_backend_name() != "postgresql":
        return None
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    thread = threading.Thread(
        target=_listen_loop, args=(conninfo, stop), name="loyalist-wake", daemon=True
    )
    thread.start()
    return thread


def _listen_loop(conninfo: str, stop: threading.Event) -> None:
    import psycopg

    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                notify()  # work may have appeared while we were not listening
                while not stop.is_set():
                    for _ in conn.notifies(timeout=1.0):
                        notify()
        except Exception:
            log.warning("listening for wake-ups failed; polling until reconnected", exc_info=True)
            stop.wait(1.0)
