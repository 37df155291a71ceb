"""CSV and Excel exports of per-customer scores."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from openpyxl import load_workbook

from loyalist.analytics.errors import AnalyticsError
from loyalist.analytics.export import export_frame

FRAME = pl.DataFrame(
    {
        "customer_id": ["c1", "c2"],
        "segment": ["Champions", "Can't lose them"],
        "frequency": [3, 1],
        "monetary": [120.5, 9.99],
        "last_purchase": [dt.date(2024, 3, 1), dt.date(2023, 12, 31)],
    }
)


def test_csv_export_round_trips(tmp_path: Path) -> None:
    path = export_frame(FRAME, tmp_path / "out" / "scores.csv")
    assert path == tmp_path / "out" / "scores.csv"
    assert path.read_text(encoding="utf-8").splitlines() == [
        "customer_id,segment,frequency,monetary,last_purchase",
        "c1,Champions,3,120.5,2024-03-01",
        "c2,Can't lose them,1,9.99,2023-12-31",
    ]


def test_excel_export_has_a_bold_frozen_header_and_typed_cells(tmp_path: Path) -> None:
    path = export_frame(FRAME, tmp_path / "scores.xlsx", sheet="RFM")
    wb = load_workbook(path)
    assert wb.sheetnames == ["RFM"]
    ws = wb["RFM"]
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    assert rows == [
        ["customer_id", "segment", "frequency", "monetary", "last_purchase"],
        ["c1", "Champions", 3, 120.5, dt.datetime(2024, 3, 1)],
        ["c2", "Can't lose them", 1, 9.99, dt.datetime(2023, 12, 31)],
    ]
    assert all(c.font.bold for c in ws[1])
    assert ws.freeze_panes == "A2"


def test_other_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AnalyticsError, match=r"unsupported export type '\.json'"):
        export_frame(FRAME, tmp_path / "scores.json")
    assert not (tmp_path / "scores.json").exists()
