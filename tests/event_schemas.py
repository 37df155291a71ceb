"""Every event a test emits is validated against its published JSON Schema when the test's
database is torn down (see the ``db`` fixture): a payload that drifts from its schema fails
the test that emitted it."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema_rs
from sqlalchemy import select

from loyalist.events import schemas
from loyalist.events import service as events
from loyalist.kit.db import Database
from loyalist.models import OutboxEvent


@cache
def _validator() -> Any:
    """The envelope's validator (jsonschema-rs, which schemathesis brings), formats checked."""
    schema = schemas.envelope_schema()
    jsonschema_rs.meta.validate(schema)  # the schema itself is valid 2020-12
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def schema_errors(envelope: dict[str, Any]) -> list[str]:
    """What is wrong with one event envelope (empty when it matches its schema)."""
    return [
        f"{envelope.get('type')} /{'/'.join(map(str, e.instance_path))}: {e.message}"
        for e in _validator().iter_errors(envelope)
    ]


def outbox_schema_errors(db: Database) -> list[str]:
    """Every schema violation among the events in ``db``'s outbox."""
    out: list[str] = []
    with db.sessionmaker() as s:
        for ev in s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)):
            out += schema_errors(events.as_dict(ev))
    return out
