from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from loyalist.analytics.io import Transactions, read_cdnow
from loyalist.analytics.summary import summarise

CDNOW_DIR = Path(__file__).resolve().parents[2] / "data" / "cdnow"


@pytest.fixture(scope="session")
def cdnow_sample() -> Transactions:
    return read_cdnow(CDNOW_DIR / "CDNOW_sample.txt")


@pytest.fixture(scope="session")
def cdnow_calibration(cdnow_sample: Transactions) -> pl.DataFrame:
    """39-week calibration summary (ending 1997-09-30) in weeks, from the raw file."""
    return summarise(cdnow_sample, observation_end="1997-09-30", unit="W")
