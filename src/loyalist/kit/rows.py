"""Mapped objects for rows a Core statement wrote (speed, issue 11)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

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
