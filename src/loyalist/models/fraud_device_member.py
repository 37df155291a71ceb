from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class FraudDeviceMember(Base):
    """A member seen on a device (keyed digest) on a programme-local day: the distinct
    members per device and day (``device.members.1d``) for the fraud controls."""

    __tablename__ = "fraud_device_member"

    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
