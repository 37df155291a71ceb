"""Calibration / holdout validation on the CDNOW sample (39 + 39 weeks)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from loyalist.analytics.io import Transactions
from loyalist.analytics.models import BGNBD
from loyalist.analytics.validation import HoldoutResult, holdout_validation

CDNOW_DIR = Path(__file__).resolve().parents[2] / "data" / "cdnow"
CAL_END = dt.date(1997, 9, 30)
HOLD_END = dt.date(1998, 6, 30)


def _raw_holdout_counts() -> dict[str, tuple[dt.date, set[dt.date]]]:
    """First purchase day and holdout purchase days per customer, read by hand."""
    per: dict[str, list[dt.date]] = defaultdict(list)
    with open(CDNOW_DIR / "CDNOW_sample.txt") as fh:
        for line in fh:
            parts = line.split()
            day = dt.datetime.strptime(parts[2], "%Y%m%d").date()
            per[parts[1]].append(day)
    return {
        cust: (min(days), {d for d in days if CAL_END < d <= HOLD_END})
        for cust, days in per.items()
    }


@pytest.fixture(scope="module")
def holdout(cdnow_sample: Transactions) -> HoldoutResult:
    return holdout_validation(
        cdnow_sample, calibration_end=CAL_END, holdout_end=HOLD_END, model="bgnbd", unit="W"
    )


def test_actual_holdout_purchases_match_a_count_from_the_raw_file(holdout: HoldoutResult) -> None:
    raw = _raw_holdout_counts()
    expected = sum(len(days) for first, days in raw.values() if first <= CAL_END)
    assert holdout.actual_total == expected
    b = holdout.buckets
    assert b["frequency_bucket"].to_list() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert int(b["customers"].sum()) == 2357
    weighted = float((b["customers"].cast(float) * b["actual"]).sum())
    assert weighted == pytest.approx(expected, rel=1e-12)


def test_predictions_are_the_model_conditional_expectations(
    holdout: HoldoutResult, cdnow_calibration: object
) -> None:
    model = holdout.model
    assert isinstance(model, BGNBD)
    assert model.r == pytest.approx(0.243, abs=5e-4)  # fitted on the calibration period
    b = holdout.buckets
    weighted = float((b["customers"].cast(float) * b["predicted"]).sum())
    assert weighted == pytest.approx(holdout.predicted_total, rel=1e-12)
    # customer 0001 (x = 2, t_x = 30.43, T = 38.86): 1.226 in the 39-week holdout
    one = float(model.conditional_expected_purchases(39.0, 2, 30.43, 38.86)[0])
    assert one == pytest.approx(1.226, abs=5e-4)
    # predictions rise with calibration frequency, as the data do
    predicted = b["predicted"].to_numpy()
    assert np.all(np.diff(predicted) > 0)
    # in aggregate the model is within 15% of what happened
    assert abs(holdout.error_total) < 0.15


def test_the_chart_shows_every_bucket_and_both_series(holdout: HoldoutResult) -> None:
    svg = holdout.chart_svg()
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    for label in ("0", "7+", "Actual", "Predicted", "Repeat purchases in the calibration"):
        assert f">{label}" in svg
    data = holdout.to_dict()
    assert data["actual_total"] == holdout.actual_total
    assert len(data["buckets"]) == 8  # type: ignore[arg-type]
