from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class JourneyState(Base):
    """Whether a journey runs or is paused (operational state, not configuration).

    ``generation`` grows with every resume: the wake-up jobs a resume enqueues carry it in
    their dedupe key, so they are new jobs even for waits that already had one.
    """

    __tablename__ = "journey_state"

    journey_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # active | paused
    generation: Mapped[int]
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime]
