"""Helpers for the habits tests: publish a habits document, read rows."""

from __future__ import annotations

from typing import Any

from loyalist.documents import service as documents
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database


def publish(db: Database, doc: dict[str, Any]) -> int:
    import loyalist.habits.config  # noqa: F401  (registers the kind)

    with db.transaction() as s:
        number, _created = documents.publish(s, SYSTEM, "habits", doc, note="test")
        return number
