from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base, BigIntPK


class CouponBatch(Base):
    """A batch of codes of one template: generated (in chunks, by a job) or imported."""

    __tablename__ = "coupon_batch"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_template.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # generated | imported
    prefix: Mapped[str] = mapped_column(String(16), default="")
    length: Mapped[int] = mapped_column(default=0)
    alphabet: Mapped[str] = mapped_column(String(64), default="")
    requested: Mapped[int] = mapped_column(BigInteger)
    generated: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # pending | done
    created_by: Mapped[str] = mapped_column(String(191))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
