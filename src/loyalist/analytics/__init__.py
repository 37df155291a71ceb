"""Customer analytics for Loyalist: RFM, cohorts, KPIs and lifetime-value models.

The package reads transactions (CSV, Parquet, a database through SQLAlchemy, or a Polars
frame) and never imports the rest of the platform.  Typical use::

    from loyalist.analytics import read_transactions, ColumnMap, summarise, fit_clv

    tx = read_transactions("orders.csv", ColumnMap(customer="member", timestamp="paid_at",
                                                   amount="total"))
    result = fit_clv(summarise(tx, unit="W"), unit="W", horizon_days=365)
    result.customers.sort("clv", descending=True).head()

See ``docs/analytics.md`` for every definition and more examples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loyalist.analytics.api import (
        analyze_clv,
        analyze_cohorts,
        analyze_kpis,
        analyze_rfm,
        analyze_segments,
    )
    from loyalist.analytics.clv import CLVResult, discounted_value, fit_clv
    from loyalist.analytics.cohorts import cohort_table, retention_matrix
    from loyalist.analytics.errors import AnalyticsError, InputError, MissingColumnError, ModelError
    from loyalist.analytics.export import export_frame
    from loyalist.analytics.io import (
        PLATFORM_COLUMNS,
        ColumnMap,
        LoadReport,
        Transactions,
        normalise,
        read_cdnow,
        read_database,
        read_transactions,
    )
    from loyalist.analytics.kpis import KPI_NAMES, KPIReport, compute_kpis
    from loyalist.analytics.models import (
        BGNBD,
        ConvergenceReport,
        FitResult,
        GammaGamma,
        ParetoNBD,
    )
    from loyalist.analytics.report import ReportOptions, build_report, write_report
    from loyalist.analytics.rfm import (
        SEGMENTS,
        RFMConfig,
        customer_rfm,
        rfm_scores,
        segment_summary,
        segment_transitions,
    )
    from loyalist.analytics.segments import ClusterResult, kmeans_segments
    from loyalist.analytics.simulate import (
        simulate_bgnbd,
        simulate_gamma_gamma,
        simulate_paretonbd,
        simulate_transactions,
    )
    from loyalist.analytics.summary import calibration_holdout, summarise
    from loyalist.analytics.validation import HoldoutResult, holdout_validation

#: public name -> module; loaded on first use so that ``import loyalist.analytics`` (and the
#: ``loyalist`` CLI, which mounts ``analyze``) stays fast: SciPy and scikit-learn are only
#: imported when a model or clustering is used.
_EXPORTS: dict[str, str] = {
    "AnalyticsError": "loyalist.analytics.errors",
    "BGNBD": "loyalist.analytics.models",
    "CLVResult": "loyalist.analytics.clv",
    "ClusterResult": "loyalist.analytics.segments",
    "ColumnMap": "loyalist.analytics.io",
    "ConvergenceReport": "loyalist.analytics.models",
    "FitResult": "loyalist.analytics.models",
    "GammaGamma": "loyalist.analytics.models",
    "HoldoutResult": "loyalist.analytics.validation",
    "InputError": "loyalist.analytics.errors",
    "KPIReport": "loyalist.analytics.kpis",
    "KPI_NAMES": "loyalist.analytics.kpis",
    "LoadReport": "loyalist.analytics.io",
    "MissingColumnError": "loyalist.analytics.errors",
    "ModelError": "loyalist.analytics.errors",
    "PLATFORM_COLUMNS": "loyalist.analytics.io",
    "ParetoNBD": "loyalist.analytics.models",
    "RFMConfig": "loyalist.analytics.rfm",
    "ReportOptions": "loyalist.analytics.report",
    "SEGMENTS": "loyalist.analytics.rfm",
    "Transactions": "loyalist.analytics.io",
    "analyze_clv": "loyalist.analytics.api",
    "analyze_cohorts": "loyalist.analytics.api",
    "analyze_kpis": "loyalist.analytics.api",
    "analyze_rfm": "loyalist.analytics.api",
    "analyze_segments": "loyalist.analytics.api",
    "build_report": "loyalist.analytics.report",
    "calibration_holdout": "loyalist.analytics.summary",
    "cohort_table": "loyalist.analytics.cohorts",
    "compute_kpis": "loyalist.analytics.kpis",
    "customer_rfm": "loyalist.analytics.rfm",
    "discounted_value": "loyalist.analytics.clv",
    "export_frame": "loyalist.analytics.export",
    "fit_clv": "loyalist.analytics.clv",
    "holdout_validation": "loyalist.analytics.validation",
    "kmeans_segments": "loyalist.analytics.segments",
    "normalise": "loyalist.analytics.io",
    "read_cdnow": "loyalist.analytics.io",
    "read_database": "loyalist.analytics.io",
    "read_transactions": "loyalist.analytics.io",
    "retention_matrix": "loyalist.analytics.cohorts",
    "rfm_scores": "loyalist.analytics.rfm",
    "segment_summary": "loyalist.analytics.rfm",
    "segment_transitions": "loyalist.analytics.rfm",
    "simulate_bgnbd": "loyalist.analytics.simulate",
    "simulate_gamma_gamma": "loyalist.analytics.simulate",
    "simulate_paretonbd": "loyalist.analytics.simulate",
    "simulate_transactions": "loyalist.analytics.simulate",
    "summarise": "loyalist.analytics.summary",
    "write_report": "loyalist.analytics.report",
}

__all__ = [
    "BGNBD",
    "KPI_NAMES",
    "PLATFORM_COLUMNS",
    "SEGMENTS",
    "AnalyticsError",
    "CLVResult",
    "ClusterResult",
    "ColumnMap",
    "ConvergenceReport",
    "FitResult",
    "GammaGamma",
    "HoldoutResult",
    "InputError",
    "KPIReport",
    "LoadReport",
    "MissingColumnError",
    "ModelError",
    "ParetoNBD",
    "RFMConfig",
    "ReportOptions",
    "Transactions",
    "analyze_clv",
    "analyze_cohorts",
    "analyze_kpis",
    "analyze_rfm",
    "analyze_segments",
    "build_report",
    "calibration_holdout",
    "cohort_table",
    "compute_kpis",
    "customer_rfm",
    "discounted_value",
    "export_frame",
    "fit_clv",
    "holdout_validation",
    "kmeans_segments",
    "normalise",
    "read_cdnow",
    "read_database",
    "read_transactions",
    "retention_matrix",
    "rfm_scores",
    "segment_summary",
    "segment_transitions",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
    "simulate_paretonbd",
    "simulate_transactions",
    "summarise",
    "write_report",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loyalist.analytics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
