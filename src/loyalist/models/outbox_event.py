from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class OutboxEvent(Base):
    """A domain event written in the same transaction as the change it describes."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        # A position's index holds positioned events only, and the events still waiting for
        # one have their own index by id: what the positioner takes under its lock after
        # every commit (events.service._position_update). When the position index also held
        # the NULLs, PostgreSQL kept the NULL entry of every event positioned since the last
        # vacuum and visited them all on each pass: 13 ms at 125,000 events under the lock
        # every writer's pass waits for, against 0.5 ms (docs/benchmarks.md "Session 13").
        Index(
            "ix_outbox_event_position",
            "position",
            unique=True,
            sqlite_where=text("position IS NOT NULL"),
            postgresql_where=text("position IS NOT NULL"),
        ),
        Index(
            "ix_outbox_event_unpositioned",
            "id",
            sqlite_where=text("position IS NULL"),
            postgresql_where=text("position IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    schema_version: Mapped[int]
    member_id: Mapped[int | None] = mapped_column(index=True)
    org_path: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    # The event's place in the stream, given once it has committed (see
    # events.service.assign_positions): ids follow the order events were written, this
    # follows the order they became visible, so a reader's cursor never skips one.
    position: Mapped[int | None] = mapped_column(BigInteger)
