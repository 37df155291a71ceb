"""The registry of actions: named effects with validated parameters, applied at most once.

``run(session, action, params, cause=..., member_id=..., actor=...)`` validates ``params``
with the action's pydantic model (errors name ``params.<field>``), then claims a unique
``action_receipt`` row for (cause, action, member) in the caller's transaction before the
effect runs. The effect and the receipt commit or roll back together, so:

* a retried job or consumer (same cause) never applies the effect twice: the second run
  finds the receipt and returns the recorded result (``replayed=True``);
* two concurrent runs of the same cause on PostgreSQL: the second waits on the unique
  index, then finds the first one's receipt (or, if the first rolled back, applies);
* the same cause with *different* parameters is a conflict (409), never a silent no-op.

A cause is a stable text naming why the action runs, e.g. ``"journey:12:step:3:member:7"``
or ``"job:4711"``. Actions are registered with ``@action("name", Params)``; the built-in
ones live in ``loyalist/actions/builtin.py`` (imported by :func:`run` on first use and by
the composition root).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.actions.errors import ActionConflict, ActionInvalid
from loyalist.errors import FieldError, LoyalistError
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.db import is_sqlite
from loyalist.kit.hashing import sha256_hex
from loyalist.kit.jsonutil import dumps
from loyalist.member import service as members
from loyalist.models import ActionReceipt, Member

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ActionContext:
    session: Session
    cause: str
    member_id: int | None
    actor: Actor
    receipt_id: int


Handler = Callable[[ActionContext, Any], dict[str, Any]]
# The same effect for many members at once: one result per context, in order.
ManyHandler = Callable[[list[ActionContext], Any], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    params: type[BaseModel]
    handler: Handler
    needs_member: bool
    description: str
    many: ManyHandler | None = None  # see action_many()


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: str
    cause: str
    member_id: int | None
    result: dict[str, Any]
    replayed: bool  # True: the action had already run for this cause; nothing new happened
    receipt_id: int


_REGISTRY: dict[str, ActionSpec] = {}
_lock = threading.Lock()
_builtin_loaded = False


def action(
    name: str, params: type[P], *, needs_member: bool = True, description: str = ""
) -> Callable[
    [Callable[[ActionContext, P], dict[str, Any]]], Callable[[ActionContext, P], dict[str, Any]]
]:
    """Register ``handler(ctx, params) -> result`` as the action ``name``.

    The handler runs in the caller's transaction, never commits, and returns a small
    JSON-ready result that is kept on the receipt and returned to every later run.
    """

    def register(
        handler: Callable[[ActionContext, P], dict[str, Any]],
    ) -> Callable[[ActionContext, P], dict[str, Any]]:
        with _lock:
            if name in _REGISTRY and _REGISTRY[name].handler is not handler:
                raise ValueError(f"action {name!r} is registered twice")
            _REGISTRY[name] = ActionSpec(name, params, handler, needs_member, description)
        return handler

    return register


def action_many(name: str) -> Callable[[ManyHandler], ManyHandler]:
    """Register ``handler(contexts, params) -> results`` as the set-based form of the
    registered action ``name`` (used by :func:`run_many`): the same effects as the single
    handler called once per context, written with a few statements for all of them."""

    def register(handler: ManyHandler) -> ManyHandler:
        with _lock:
            _REGISTRY[name] = dataclasses.replace(_REGISTRY[name], many=handler)
        return handler

    return register


def _ensure_builtin() -> None:
    global _builtin_loaded
    if not _builtin_loaded:
        import loyalist.actions.builtin  # noqa: F401  (registers the built-in actions)

        _builtin_loaded = True


def names() -> list[str]:
    _ensure_builtin()
    return sorted(_REGISTRY)


def spec(name: str) -> ActionSpec:
    _ensure_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ActionInvalid(
            f"Unknown action {name!r}.",
            [FieldError("action", f"one of: {', '.join(sorted(_REGISTRY))}", "unknown_action")],
        ) from None


def validate(name: str, params: dict[str, Any]) -> BaseModel:
    """The action's parameters, checked; problems are ``params.<field>`` field errors."""
    s = spec(name)
    try:
        return s.params.model_validate(params)
    except ValidationError as exc:
        errors = [
            FieldError(".".join(["params", *(str(p) for p in err["loc"])]), err["msg"], err["type"])
            for err in exc.errors()
        ]
        raise ActionInvalid(
            f"The parameters of action {name!r} are not valid: "
            + "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
            errors,
        ) from exc


def _existing(session: Session, cause: str, name: str, member_key: int) -> ActionReceipt | None:
    return session.scalar(
        select(ActionReceipt)
        .where(
            ActionReceipt.cause == cause,
            ActionReceipt.action == name,
            ActionReceipt.member_key == member_key,
        )
        .execution_options(populate_existing=True)
    )


def _replay(receipt: ActionReceipt, params_hash: str) -> ActionResult:
    if receipt.params_hash != params_hash:
        raise ActionConflict(
            f"Action {receipt.action!r} already ran for cause {receipt.cause!r} with other "
            "parameters.",
            [FieldError("cause", "already used with other parameters", "duplicate")],
        )
    return ActionResult(
        receipt.action, receipt.cause, receipt.member_id, dict(receipt.result), True, receipt.id
    )


def run(
    session: Session,
    action: str,
    params: dict[str, Any],
    *,
    cause: str,
    member_id: int | None,
    actor: Actor,
) -> ActionResult:
    """Apply ``action`` once for (``cause``, ``action``, ``member_id``); see the module doc."""
    s = spec(action)
    if not cause or len(cause) > 191:
        raise ActionInvalid(
            "A cause is 1 to 191 characters.", [FieldError("cause", "1 to 191 characters")]
        )
    if s.needs_member and member_id is None:
        raise ActionInvalid(
            f"Action {action!r} needs a member.", [FieldError("member_id", "required")]
        )
    typed = validate(action, params)
    if member_id is not None:
        members.get(session, actor, member_id)  # in the actor's scope, else 404 (MemberNotFound)
    plain = typed.model_dump(mode="json")
    params_hash = sha256_hex(dumps(plain))
    member_key = member_id or 0
    found = _existing(session, cause, action, member_key)
    if found is not None:
        return _replay(found, params_hash)
    receipt = ActionReceipt(
        cause=cause,
        action=action,
        member_key=member_key,
        member_id=member_id,
        params=plain,
        params_hash=params_hash,
        result={},
        actor=actor.name[:128],
        created_at=utcnow(),
    )
    try:
        # The claim: on PostgreSQL a concurrent run of the same cause waits here for the
        # other transaction, then fails the unique constraint if that one committed.
        with session.begin_nested():
            session.add(receipt)
            session.flush()
    except IntegrityError:
        found = _existing(session, cause, action, member_key)
        if found is None:  # not a duplicate receipt: some other constraint failed
            raise
        return _replay(found, params_hash)
    ctx = ActionContext(session, cause, member_id, actor, receipt.id)
    result = s.handler(ctx, typed)
    receipt.result = result
    session.flush()
    return ActionResult(action, cause, member_id, result, False, receipt.id)


Outcome = ActionResult | LoyalistError


def _one(
    session: Session, action: str, params: dict[str, Any], cause: str, member_id: int, actor: Actor
) -> Outcome:
    """:func:`run` in its own savepoint: a refused or failing action leaves nothing behind."""
    try:
        with session.begin_nested():
            return run(session, action, params, cause=cause, member_id=member_id, actor=actor)
    except LoyalistError as exc:
        return exc


def run_many(
    session: Session,
    action: str,
    params: dict[str, Any],
    items: Sequence[tuple[str, int]],
    *,
    actor: Actor,
) -> list[Outcome]:
    """:func:`run` for many (cause, member id) pairs with the same parameters, each applied
    once; one outcome per pair, in order: its result, or the error :func:`run` would have
    raised (that pair then left nothing behind).

    With a set-based handler (:func:`action_many`) the receipts are claimed with one
    multi-row insert that skips those already taken (they replay through :func:`run`), the
    effects are written for all at once and the results recorded in one statement; if that
    fails, everything it did is rolled back and each pair runs alone through :func:`run`.
    Pairs a member lookup would refuse or redirect (missing, out of scope, merged) also run
    alone, so their answer is exactly :func:`run`'s.
    """
    out: list[Outcome | None] = [None] * len(items)
    s = spec(action)
    try:
        typed = validate(action, params)
    except LoyalistError as exc:
        return [exc] * len(items)
    ids = {m for _, m in items}
    found = (
        {m.id: m for m in session.scalars(select(Member).where(Member.id.in_(ids)))}
        if s.many is not None and len(items) > 1
        else {}
    )
    together: list[int] = []
    for i, (cause, member_id) in enumerate(items):
        m = found.get(member_id)
        if (
            m is not None
            and m.status != members.MERGED
            and actor.sees(m.org_path)
            and 0 < len(cause) <= 191
        ):
            together.append(i)
    if together and s.many is not None:
        try:
            with session.begin_nested():
                _run_together(session, s, typed, items, together, actor, out)
        except Exception:  # run alone: the failure then lands on its own pair
            for i in together:
                out[i] = None
    for i, (cause, member_id) in enumerate(items):
        if out[i] is None:
            out[i] = _one(session, action, params, cause, member_id, actor)
    return [x for x in out if x is not None]


def _run_together(
    session: Session,
    s: ActionSpec,
    typed: BaseModel,
    items: Sequence[tuple[str, int]],
    together: list[int],
    actor: Actor,
    out: list[Outcome | None],
) -> None:
    assert s.many is not None
    plain = typed.model_dump(mode="json")
    params_hash = sha256_hex(dumps(plain))
    now = utcnow()
    ins = sqlite_insert if is_sqlite(session) else pg_insert
    claimed: dict[tuple[str, int], int] = {}
    for start in range(0, len(together), 500):
        rows = [
            {
                "cause": items[i][0],
                "action": s.name,
                "member_key": items[i][1],
                "member_id": items[i][1],
                "params": plain,
                "params_hash": params_hash,
                "result": {},
                "actor": actor.name[:128],
                "created_at": now,
            }
            for i in together[start : start + 500]
        ]
        stmt = (
            ins(ActionReceipt)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(ActionReceipt.id, ActionReceipt.cause, ActionReceipt.member_key)
        )
        for rid, cause, member_key in session.execute(stmt):
            claimed[(cause, member_key)] = rid
    fresh = [i for i in together if items[i] in claimed]  # the others replay alone
    if not fresh:
        return
    contexts = [
        ActionContext(session, items[i][0], items[i][1], actor, claimed[items[i]]) for i in fresh
    ]
    results = s.many(contexts, typed)
    if len(results) != len(contexts):
        raise RuntimeError(f"action {s.name}: {len(results)} results for {len(contexts)} members")
    session.execute(
        update(ActionReceipt),
        [{"id": c.receipt_id, "result": r} for c, r in zip(contexts, results, strict=True)],
    )
    for i, c, r in zip(fresh, contexts, results, strict=True):
        out[i] = ActionResult(s.name, c.cause, c.member_id, r, False, c.receipt_id)
