from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class Recommendation(Base):
    """One stored suggestion of the nightly job (issue 14 item 6): a member's personal list
    (``member_id`` set, ``scope`` empty) or a popularity list of an org unit (``member_id``
    empty, ``scope`` the unit's path; the empty scope is the whole programme). Rewritten
    whole by each run; filtered again when read (points, stock, tier, what they hold)."""

    __tablename__ = "recommendation"
    __table_args__ = (
        Index("ix_recommendation_member_id_kind_rank", "member_id", "kind", "rank"),
        Index("ix_recommendation_scope_kind_rank", "scope", "kind", "rank"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    scope: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(16))  # product | reward
    item: Mapped[str] = mapped_column(String(64))  # a SKU or a reward code
    category: Mapped[str | None] = mapped_column(String(64))
    rank: Mapped[int]
    score: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))  # als | popular
    because: Mapped[str | None] = mapped_column(String(64))  # the item that explains it
    computed_at: Mapped[datetime]
