"""Answers of the privacy operations (export, erasure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class MemberExportOut(BaseModel):
    """A member's data: a zip (base64) of JSON and CSV files per table and a manifest."""

    member_id: int
    filename: str = Field(description="suggested file name, e.g. M000000042-export.zip")
    manifest: dict[str, Any] = Field(
        description="format, member, generated_at, and each file's name, rows and sha256"
    )
    zip_base64: str = Field(description="the zip file, standard base64")


class MemberErasedOut(BaseModel):
    """A member whose personal data is erased (their points, orders and history stay)."""

    member_id: int
    member_no: str
    erased_at: datetime
