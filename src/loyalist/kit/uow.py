"""The unit of work: one transaction, the caller, and what happens after it commits.

Every :meth:`loyalist.kit.db.Database.transaction` (and so every ``Database.run``) opens a
:class:`UnitOfWork` and stores it in ``session.info``; services keep receiving a plain
``Session`` and reach the unit with :func:`uow_of` when they need the caller or an
after-commit hook. Rows written in the session (events, jobs, anything) exist if and only
if the transaction commits; callbacks registered with :meth:`UnitOfWork.after_commit` run
only after a successful commit, never after a rollback, and their exceptions are logged,
never raised into the caller (the work is already durable by then).

Entry points name the caller either explicitly (``db.run(fn, actor=...)``,
``db.transaction(actor=...)``) or for a stretch of code with :func:`acting_as`, which the
API, the console, the member page and the CLI use so service signatures stay as they are.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from loyalist.kit.actor import Actor

log = logging.getLogger("loyalist.uow")

_KEY = "loyalist.uow"
_current_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
    "loyalist_current_actor", default=None
)


@dataclass(eq=False)
class UnitOfWork:
    """One transaction's context: its session, who acts, and after-commit callbacks."""

    session: Session
    actor: Actor | None = None
    # Free slots for features that collect something per unit (e.g. a batch to flush).
    info: dict[str, Any] = field(default_factory=dict)
    _hooks: list[Callable[[], None]] = field(default_factory=list)
    committed: bool = False

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction has committed (never on rollback)."""
        self._hooks.append(callback)

    @property
    def actor_name(self) -> str:
        """The caller's name for audit rows ("system" when nobody is named)."""
        return self.actor.name if self.actor is not None else "system"

    def _run_hooks(self) -> None:
        self.committed = True
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # the work is committed: a failing hook must not undo the answer
                log.exception("after-commit hook %r failed", hook)

    def _discard(self) -> None:
        self._hooks.clear()


def begin_unit(session: Session, actor: Actor | None = None) -> UnitOfWork:
    """Attach a new unit of work to ``session`` (done by ``Database.transaction``)."""
    uow = UnitOfWork(session=session, actor=actor if actor is not None else current_actor())
    session.info[_KEY] = uow
    return uow


def uow_of(session: Session) -> UnitOfWork:
    """The unit of work the session's transaction belongs to."""
    uow = session.info.get(_KEY)
    if uow is None:
        raise RuntimeError(
            "this session has no unit of work: open it with Database.transaction() or .run()"
        )
    assert isinstance(uow, UnitOfWork)
    return uow


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Shorthand for ``uow_of(session).after_commit(callback)``."""
    uow_of(session).after_commit(callback)


def current_actor() -> Actor | None:
    """The caller named by the innermost :func:`acting_as` in this context, if any."""
    return _current_actor.get()


@contextmanager
def acting_as(actor: Actor | None) -> Iterator[None]:
    """Name the caller for every unit of work opened inside the block (this thread/task)."""
    token = _current_actor.set(actor)
    try:
        yield
    finally:
        _current_actor.reset(token)
