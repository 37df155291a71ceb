from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class ConfigDocument(Base):
    """An immutable, numbered version of a configuration document of one kind.

    The ``programme`` kind keeps its versions in ``programme_version`` (see
    loyalist/documents/registry.py); every other kind is stored here.
    """

    __tablename__ = "config_document"
    __table_args__ = (UniqueConstraint("kind", "version", name="uq_config_document_kind_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int]
    document: Mapped[dict[str, Any]]
    checksum: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
