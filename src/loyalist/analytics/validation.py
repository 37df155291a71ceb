"""Calibration / holdout validation of a purchase model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from loyalist.analytics.charts import bar_chart
from loyalist.analytics.clv import ModelName, PurchaseModel
from loyalist.analytics.io import Transactions
from loyalist.analytics.models import BGNBD, ParetoNBD
from loyalist.analytics.summary import DateLike, calibration_holdout


@dataclass(frozen=True)
class HoldoutResult:
    """Predicted vs actual repeat purchases in the holdout, per calibration frequency."""

    model: PurchaseModel
    buckets: pl.DataFrame  # frequency_bucket, customers, actual, predicted (means per customer)
    actual_total: float
    predicted_total: float
    calibration_end: str
    holdout_end: str

    @property
    def error_total(self) -> float:
        """Relative error of the total prediction (predicted / actual - 1)."""
        return self.predicted_total / self.actual_total - 1.0 if self.actual_total else 0.0

    def chart_svg(
        self,
        *,
        actual_label: str = "Actual",
        predicted_label: str = "Predicted",
        x_label: str = "Repeat purchases in the calibration period",
        y_label: str = "Mean repeat purchases in the holdout",
        width: int = 720,
        height: int = 300,
    ) -> str:
        """Predicted vs actual holdout purchases per calibration-frequency bucket (SVG)."""
        b = self.buckets
        return bar_chart(
            [str(v) for v in b["frequency_bucket"].to_list()],
            [
                (actual_label, [float(v) for v in b["actual"].to_list()]),
                (predicted_label, [float(v) for v in b["predicted"].to_list()]),
            ],
            x_label=x_label,
            y_label=y_label,
            width=width,
            height=height,
        )

    def to_dict(self) -> dict[str, object]:
        assert self.model.fit_result is not None
        return {
            "model": self.model.fit_result.to_dict(),
            "calibration_end": self.calibration_end,
            "holdout_end": self.holdout_end,
            "actual_total": self.actual_total,
            "predicted_total": self.predicted_total,
            "relative_error_total": self.error_total,
            "buckets": self.buckets.to_dicts(),
        }


def holdout_validation(
    tx: Transactions,
    *,
    calibration_end: DateLike,
    holdout_end: DateLike | None = None,
    model: ModelName = "bgnbd",
    unit: str | float = "W",
    max_bucket: int = 7,
) -> HoldoutResult:
    """Fit on the calibration period, predict each customer's holdout repeat purchases.

    Buckets are calibration frequencies 0 .. ``max_bucket - 1`` and "``max_bucket``+".
    """
    data = calibration_holdout(
        tx, calibration_end=calibration_end, holdout_end=holdout_end, unit=unit
    )
    x = data["frequency"].to_numpy().astype(np.float64)
    t_x = data["recency"].to_numpy().astype(np.float64)
    big_t = data["T"].to_numpy().astype(np.float64)
    duration = float(data["duration_holdout"][0])
    pm: PurchaseModel
    pm = ParetoNBD.fit(x, t_x, big_t) if model == "paretonbd" else BGNBD.fit(x, t_x, big_t)
    predicted = pm.conditional_expected_purchases(duration, x, t_x, big_t)
    frame = data.select("frequency", "frequency_holdout").with_columns(
        pl.Series("predicted", predicted),
        pl.col("frequency").clip(upper_bound=max_bucket).alias("bucket"),
    )
    buckets = (
        frame.group_by("bucket")
        .agg(
            pl.len().alias("customers"),
            pl.col("frequency_holdout").mean().alias("actual"),
            pl.col("predicted").mean().alias("predicted"),
        )
        .sort("bucket")
        .with_columns(
            pl.when(pl.col("bucket") >= max_bucket)
            .then(pl.lit(f"{max_bucket}+"))
            .otherwise(pl.col("bucket").cast(pl.Utf8))
            .alias("frequency_bucket")
        )
        .select("frequency_bucket", "customers", "actual", "predicted")
    )
    hold = holdout_end if holdout_end is not None else "last transaction"
    return HoldoutResult(
        model=pm,
        buckets=buckets,
        actual_total=float(frame["frequency_holdout"].sum()),
        predicted_total=float(predicted.sum()),
        calibration_end=str(calibration_end),
        holdout_end=str(hold),
    )
