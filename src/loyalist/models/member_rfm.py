from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class MemberRfm(Base):
    """A member's RFM scores and P(alive), recomputed nightly (``insights.rfm``).

    One row per member who has bought: R, F and M quintile scores (1..5, 5 best), the
    weighted score of the programme's RFM tiers (``tiers.rfm_weights``, 1/1/1 by default),
    the RFM segment (the analytics package's English name) and P(alive) (BG/NBD, None when
    the model could not be fitted). ``as_of`` is the programme-local day the figures are for.
    """

    __tablename__ = "member_rfm"

    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), primary_key=True)
    recency_days: Mapped[int] = mapped_column(Integer)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary_minor: Mapped[int] = mapped_column(BigInteger)
    r_score: Mapped[int] = mapped_column(SmallInteger)
    f_score: Mapped[int] = mapped_column(SmallInteger)
    m_score: Mapped[int] = mapped_column(SmallInteger)
    score: Mapped[int] = mapped_column(Integer, index=True)
    segment: Mapped[str] = mapped_column(String(32), index=True)
    p_alive: Mapped[float | None] = mapped_column(Float)
    as_of: Mapped[date]
    computed_at: Mapped[datetime]
