"""Organisation payloads."""

from __future__ import annotations

from pydantic import BaseModel


class UnitOut(BaseModel):
    code: str
    name: str
    kind: str
    parent_id: int | None
    id: int


class Units(BaseModel):
    items: list[UnitOut]
