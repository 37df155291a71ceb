from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class ImportBatch(Base):
    """One bulk import of one file (issue 13): the file's checksum makes a file import once;
    ``cursor`` is the number of data rows committed so far (the resume point)."""

    __tablename__ = "import_batch"
    __table_args__ = (UniqueConstraint("kind", "checksum"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # members | orders | points
    checksum: Mapped[str] = mapped_column(String(64))  # SHA-256 of the file's bytes
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # running | done
    total_rows: Mapped[int] = mapped_column(default=0)
    cursor: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)  # rows that wrote something new
    unchanged: Mapped[int] = mapped_column(default=0)  # rows already there (dedupe keys)
    actor: Mapped[str] = mapped_column(String(128))
    # orders only: every order earns under this published programme version (NULL: the
    # version in force at each order's date)
    programme_version: Mapped[int | None] = mapped_column(default=None)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
