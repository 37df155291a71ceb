"""Types for JSON on the wire: strict inputs and answers written as they always were.

Inputs: API bodies are validated strictly (no ``true`` or ``"5"`` where a number is due);
dates and instants are accepted only as RFC 3339 text (or as ``date``/``datetime`` objects
from Python callers), never as epoch numbers.
Answers: instants are written with ``datetime.isoformat()`` (``+00:00``, not ``Z``) so the
declared response schemas keep the JSON the API has always sent.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Field, PlainSerializer, WithJsonSchema

_RFC3339_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RFC3339_INSTANT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _date_text(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _RFC3339_DATE.match(value):
        return value
    raise ValueError("must be an RFC 3339 date (YYYY-MM-DD)")


def _instant_text(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _RFC3339_INSTANT.match(value):
        return value
    raise ValueError("must be an RFC 3339 date-time with an offset (2026-06-10T12:00:00+08:00)")


# Input: a calendar date, as RFC 3339 text only (the model around it may be strict).
DateIn = Annotated[dt.date, Field(strict=False), BeforeValidator(_date_text)]
# Input: an instant with its offset, as RFC 3339 text only.
InstantIn = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_instant_text)]

# Output: an instant, written as ``isoformat()``.
Timestamp = Annotated[
    dt.datetime,
    PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# A body field taken as raw JSON and validated later by the service as a document (so its
# errors name the document's fields), described in the OpenAPI document by the document's
# own model: ``Annotated[dict[str, Any], document_schema(Journey, "JourneyDocument")]``.
# ``loyalist.http.openapi_document`` adds the registered models to the components.
DOCUMENT_SCHEMAS: dict[str, Any] = {}


def document_schema(model: Any, name: str) -> WithJsonSchema:
    """The OpenAPI schema of a raw-JSON body field: a reference to ``name`` (the model's
    JSON Schema; its nested definitions are named ``<name>.<Model>``)."""
    DOCUMENT_SCHEMAS[name] = model
    # (wrapped in allOf: pydantic resolves a bare top-level $ref against its own definitions)
    return WithJsonSchema({"allOf": [{"$ref": f"#/components/schemas/{name}"}]})


def document_components() -> dict[str, Any]:
    """The components of every registered document schema, ready for the OpenAPI document."""
    out: dict[str, Any] = {}
    for name, model in DOCUMENT_SCHEMAS.items():
        schema = model.model_json_schema(ref_template=f"#/components/schemas/{name}.{{model}}")
        for sub, body in schema.pop("$defs", {}).items():
            out[f"{name}.{sub}"] = body
        out[name] = schema
    return out
