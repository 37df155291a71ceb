"""Pure parts of bulk import: reading a file into rows, the columns of each kind, parsing
cells, the row-by-row error report. No database here."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

KINDS = ("members", "orders", "points")

#: The columns of each file kind: (name, required). Unknown columns are refused.
COLUMNS: dict[str, tuple[tuple[str, bool], ...]] = {
    "members": (
        ("external_id", True),
        ("phone", False),
        ("email", False),
        ("name", False),
        ("birthday", False),
        ("gender", False),
        ("city", False),
        ("home_store", False),
        ("join_channel", False),
        ("tags", False),
    ),
    "orders": (
        ("external_id", True),
        ("member", False),
        ("store", True),
        ("occurred_at", True),
        ("amount_paid_minor", True),
        ("channel", False),
        ("currency", False),
        ("sku", False),
        ("category", False),
    ),
    "points": (
        ("external_id", True),
        ("member", True),
        ("points", True),
        ("earned_at", True),
        ("expires_at", False),
    ),
}


@dataclass(frozen=True)
class RowError:
    """One problem of one data row: ``row`` is the line number in the file (the header is
    line 1, the first data row line 2), ``field`` the column, ``problem`` what is wrong."""

    row: int
    field: str
    problem: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "problem": self.problem, "code": self.code}


class FileUnreadable(ValueError):
    """The file is not a CSV or .xlsx file with the expected header."""


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def read_rows(data: bytes, filename: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the data rows of a CSV (UTF-8, with or without BOM) or .xlsx file
    (first sheet). Cells are stripped strings; a blank line is skipped but keeps its line
    number out of the count (row numbers are the file's line numbers)."""
    if filename.lower().endswith(".xlsx"):
        raw = list(_xlsx_rows(data))
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FileUnreadable("the file is not UTF-8 text (CSV) nor .xlsx") from exc
        raw = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text, newline=""))]
    if not raw or not any(raw[0]):
        raise FileUnreadable("the file has no header line")
    header = [h.strip().lower() for h in raw[0]]
    rows: list[dict[str, str]] = []
    for cells in raw[1:]:
        if not any(cells):
            rows.append({})  # a blank line: kept so that row numbers stay the file's
            continue
        rows.append({h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header) if h})
    return header, rows


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise FileUnreadable("the file is not a readable .xlsx workbook") from exc
    ws = wb.worksheets[0]
    for values in ws.iter_rows(values_only=True):
        yield [_cell(v) for v in values]
    wb.close()


def header_errors(kind: str, header: list[str]) -> list[RowError]:
    known = {name for name, _ in COLUMNS[kind]}
    errors = [
        RowError(1, h, "unknown column", "unknown_column") for h in header if h and h not in known
    ]
    errors += [
        RowError(1, name, "required column missing", "missing_column")
        for name, required in COLUMNS[kind]
        if required and name not in header
    ]
    seen: set[str] = set()
    for h in header:
        if h and h in seen:
            errors.append(RowError(1, h, "column given twice", "duplicate_column"))
        seen.add(h)
    return sorted(errors, key=lambda e: e.field)


def parse_int(value: str) -> int:
    v = value.replace(",", "").strip()
    if not v or not (v.isdigit() or (v[0] in "+-" and v[1:].isdigit())):
        raise ValueError("must be a whole number")
    return int(v)


def parse_instant(value: str) -> datetime:
    """An ISO 8601 date-time with a UTC offset (``2026-05-01T10:00:00+08:00``)."""
    try:
        at = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError as exc:
        raise ValueError("must be an ISO 8601 date-time with a UTC offset") from exc
    if at.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-05-01T10:00:00+08:00")
    return at.astimezone(UTC)


def report_csv(errors: list[RowError]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["row", "field", "problem", "code"])
    for e in errors:
        w.writerow([e.row, e.field, e.problem, e.code])
    return out.getvalue()
