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
