"""CSV and Excel exports of per-customer scores."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from loyalist.analytics.errors import AnalyticsError


def export_frame(frame: pl.DataFrame, path: str | Path, *, sheet: str = "customers") -> Path:
    """Write ``frame`` as CSV (``.csv``) or Excel (``.xlsx``, via openpyxl), by suffix."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        frame.write_csv(out)
    elif suffix == ".xlsx":
        _write_xlsx(frame, out, sheet)
    else:
        raise AnalyticsError(f"unsupported export type {suffix!r}: use .csv or .xlsx")
    return out


def _cell(value: object) -> object:
    if isinstance(value, dt.date | dt.datetime | int | float | str | bool) or value is None:
        return value
    return str(value)


def _write_xlsx(frame: pl.DataFrame, path: Path, sheet: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook(write_only=False)
    ws = wb.active
    ws.title = sheet[:31]
    ws.append(frame.columns)
    for c in ws[1]:
        c.font = Font(bold=True)
    for row in frame.iter_rows():
        ws.append([_cell(v) for v in row])
    ws.freeze_panes = "A2"
    for i, name in enumerate(frame.columns, start=1):
        letter = ws.cell(row=1, column=i).column_letter
        ws.column_dimensions[letter].width = max(10, min(40, len(name) + 2))
    wb.save(path)
