"""Kinds of versioned configuration documents, and where each keeps its versions.

A kind names a document schema (a pydantic model), how to validate it with field paths,
the permission to publish it and the event published with each new version. Versions are
immutable and numbered 1, 2, 3 … per kind; publishing the same content as the latest
version creates nothing.

Storage: the ``programme`` kind keeps its versions where they always were, in the
``programme_version`` table, through the programme service (its API, CLI, console and the
``programme.published`` event are unchanged). Every other kind is stored in the
``config_document`` table and announced with ``document.published``. Later features
(journeys, surveys, challenges, risk rules) call :func:`register` with their schema.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from loyalist.access.permissions import PROGRAMME_PUBLISH
from loyalist.documents.errors import DocumentInvalid, UnknownKind
from loyalist.errors import FieldError
from loyalist.kit.actor import Actor
from loyalist.kit.documents import path_errors
from loyalist.programme import service as programmes
from loyalist.programme.schemas import Programme


@dataclass(frozen=True, slots=True)
class Version:
    kind: str
    version: int
    document: dict[str, Any]
    checksum: str
    created_by: str | None
    note: str | None
    created_at: datetime


class Store(Protocol):
    """Where a kind keeps its versions (the default: the ``config_document`` table)."""

    def publish(
        self, session: Session, actor: Actor, model: BaseModel, note: str | None
    ) -> tuple[int, bool]: ...

    def versions(self, session: Session) -> list[Version]: ...

    def get(self, session: Session, version: int | None) -> Version | None: ...


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    description: str
    schema: type[BaseModel]
    permission: str = PROGRAMME_PUBLISH
    store: Store | None = None  # None: config_document
    # A kind's own validation (it must name problems by field path), instead of the schema's.
    parser: Callable[[Any], BaseModel] | None = None

    def parse(self, data: Any) -> BaseModel:
        """``data`` validated; every problem named by its field path."""
        if self.parser is not None:
            return self.parser(data)
        if not isinstance(data, dict):
            raise DocumentInvalid(
                f"A {self.name} document must be a mapping.",
                [FieldError("$", "expected a mapping")],
            )
        try:
            model = self.schema.model_validate(data)
        except ValidationError as exc:
            errors = [FieldError(e.path, e.message, e.type) for e in path_errors(exc)]
            raise DocumentInvalid(
                f"The {self.name} document has {len(errors)} error(s): "
                + "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
                errors,
            ) from exc
        return model

    @staticmethod
    def dump(model: BaseModel) -> dict[str, Any]:
        data: dict[str, Any] = model.model_dump(mode="json")
        return data


class ProgrammeStore:
    """The programme kind: versions in ``programme_version`` via the programme service."""

    def publish(
        self, session: Session, actor: Actor, model: BaseModel, note: str | None
    ) -> tuple[int, bool]:
        assert isinstance(model, Programme)
        pv, created = programmes.publish(session, actor, model, note=note)
        return pv.version, created

    def versions(self, session: Session) -> list[Version]:
        return [
            Version(
                "programme", v.version, v.document, v.checksum, v.created_by, v.note, v.created_at
            )
            for v in programmes.list_versions(session)
        ]

    def get(self, session: Session, version: int | None) -> Version | None:
        rows = programmes.list_versions(session)
        if not rows:
            return None
        if version is None:
            v = rows[-1]
        else:
            matches = [r for r in rows if r.version == version]
            if not matches:
                return None
            v = matches[0]
        return Version(
            "programme", v.version, v.document, v.checksum, v.created_by, v.note, v.created_at
        )


_KINDS: dict[str, Kind] = {}
_lock = threading.Lock()


def register(kind: Kind) -> Kind:
    with _lock:
        if kind.name in _KINDS and _KINDS[kind.name] != kind:
            raise ValueError(f"document kind {kind.name!r} is registered twice")
        _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Forget a kind (tests register their own)."""
    with _lock:
        _KINDS.pop(name, None)


def get(name: str) -> Kind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownKind(
            f"No document kind {name!r}; kinds: {', '.join(sorted(_KINDS))}.",
            [FieldError("kind", f"one of: {', '.join(sorted(_KINDS))}", "unknown_kind")],
        ) from None


def kinds() -> list[Kind]:
    return [_KINDS[k] for k in sorted(_KINDS)]


PROGRAMME = register(
    Kind(
        name="programme",
        description="The loyalty programme: tiers, earning rules, campaigns, expiry, rewards",
        schema=Programme,
        permission=PROGRAMME_PUBLISH,
        store=ProgrammeStore(),
        parser=programmes.parse,  # condition errors keep their paths inside ``when:``
    )
)
