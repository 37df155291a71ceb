"""Versioned configuration documents: the pure helpers (checksum, YAML text, diff, errors).

The kinds, their storage and publishing live in ``loyalist/documents``; this module holds
what needs no business word and no database.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from loyalist.kit.hashing import sha256_hex
from loyalist.kit.jsonutil import dumps


def checksum(document: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``document`` (key order does not matter)."""
    return sha256_hex(dumps(document))


def as_yaml(document: dict[str, Any]) -> str:
    """The document as YAML, keys in their stored order, Chinese left readable."""
    import yaml  # when first needed, not when the server starts (memory, issue 11)

    text: str = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=100)
    return text


def diff(
    before: dict[str, Any] | None, after: dict[str, Any], label_before: str, label_after: str
) -> list[str]:
    """A unified diff (2 lines of context) of two documents' YAML; [] when they are equal."""
    a = as_yaml(before).splitlines() if before is not None else []
    b = as_yaml(after).splitlines()
    return list(difflib.unified_diff(a, b, label_before, label_after, lineterm="", n=2))


@dataclass(frozen=True, slots=True)
class PathError:
    path: str
    message: str
    type: str


def path_errors(exc: ValidationError, prefix: Iterable[str] = ()) -> list[PathError]:
    """Pydantic's errors named by their dotted field path (``tiers.levels.1.threshold``)."""
    head = list(prefix)
    return [
        PathError(".".join([*head, *(str(p) for p in err["loc"])]) or "$", err["msg"], err["type"])
        for err in exc.errors()
    ]
