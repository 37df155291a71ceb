from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class PointsAccount(Base):
    """The balance cache of one member, and the row every points write locks first.

    available = sum(entry.delta_available) = sum(open available lots) - debt
    pending   = sum(entry.delta_pending)   = sum(open pending lots)
    """

    __tablename__ = "points_account"

    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debt: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]
