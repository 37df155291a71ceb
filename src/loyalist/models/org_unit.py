from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalist.kit.db import Base


class OrgUnit(Base):
    """A node of the organisation tree: HQ → regions → stores."""

    __tablename__ = "org_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # hq | region | store
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    # Materialised path of ids, e.g. "/1/4/17/": a scope contains a node when the node's path
    # starts with the scope's path.
    path: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]  # a closed store takes no new members or orders
