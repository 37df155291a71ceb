"""Mapped objects for rows a Core statement wrote or read (speed, issue 11)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Column, Table, inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.instrumentation import manager_of_class

T = TypeVar("T")


def written(cls: type[T], values: Mapping[str, Any]) -> T:
    """A transient object of the mapped class ``cls`` holding ``values`` (the row a Core
    statement wrote) as loaded values: the same attributes as ``cls(**values)``, without
    the instrumented constructor's per-attribute events and change history, so nothing of
    it is pending for a flush. For answers built from what was written, and for objects
    then made persistent as written (``make_transient_to_detached``)."""
    obj: T = manager_of_class(cls).new_instance()
    obj.__dict__.update(values)
    return obj


class Loaded(Generic[T]):
    """Rows of the mapped class ``cls`` read by a Core statement (:attr:`columns`, every
    column of its table, in a caller's own ``select``) made into the session's persistent
    objects as an ORM query with ``populate_existing`` loads them, without the ORM's
    statement and loading machinery (speed, issue 11: the order path's locking read).

    :meth:`load` gives the object of the session's identity map when there is one, its
    columns set to the row's as loaded values (as ``populate_existing`` does: call it on
    objects with no pending changes, e.g. after ``ledger.prepare_lock``'s flush); else a new
    object holding the row, persistent in the session as the ORM's loader leaves it: in
    the identity map, nothing pending, expired by a rollback of the transaction.

    Relies on SQLAlchemy's private loading steps (``InstanceState.key``, ``session_id``,
    ``IdentityMap._add_unpresent``), the ones ``orm.loading`` itself takes for a new row;
    ``tests/unit/kit/test_rows.py`` holds the result to what a query gives. Classes with
    ``load`` listeners (e.g. mutable JSON types) are refused: their listeners would not
    run."""

    def __init__(self, cls: type[T]) -> None:
        mapper = inspect(cls)
        manager = manager_of_class(cls)
        if manager.dispatch.load or manager.dispatch.refresh:
            raise TypeError(f"{cls.__name__} has load listeners: load it with the ORM")
        self.cls = cls
        self.table = cast(Table, mapper.local_table)
        props = mapper.column_attrs
        self.keys: tuple[str, ...] = tuple(p.key for p in props)
        self.columns: tuple[Column[Any], ...] = tuple(p.columns[0] for p in props)
        pk = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
        self._pk = tuple(self.keys.index(k) for k in pk)
        self._manager = manager
        self._identity_class = mapper._identity_class

    def load(self, session: Session, row: Sequence[Any]) -> T:
        """The persistent object of ``row`` (the values of :attr:`columns`, in order)."""
        key = (self._identity_class, tuple([row[i] for i in self._pk]), None)
        identity_map = session.identity_map
        found: T | None = identity_map.get(key)
        if found is not None:  # populate_existing: the row's values, as loaded
            for k, value in zip(self.keys, row, strict=True):
                set_committed_value(found, k, value)
            return found
        obj: T = self._manager.new_instance()
        obj.__dict__.update(zip(self.keys, row, strict=True))
        state = instance_state(obj)
        # as orm.loading._instance attaches a new row's object (private steps, see above)
        state.key = key
        state.identity_token = None
        state.session_id = session.hash_key
        identity_map._add_unpresent(state, key)
        return obj
