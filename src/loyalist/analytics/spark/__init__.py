"""Analytics on Apache Spark: the summary, RFM, cohorts, KPIs and CLV of
:mod:`loyalist.analytics` computed by Spark (local mode, a ``spark://`` master or a Spark
Connect ``sc://`` URL).

PySpark is optional (``pip install loyalist[spark]``; Java 17+ from the OS).  This module
imports without it; :func:`require_spark` (called by every entry point) raises
:class:`SparkUnavailable` with the install hint when it is missing.

The heavy work (transactions to one row per customer, ranks, cohort grids) runs in Spark;
the CLV models are fitted on the driver from the distinct (x, t_x, T) and (x, m) rows with
their counts, and customers are scored in parallel with ``mapInPandas``.  The results equal
the local engine's (see ``docs/analytics.md``, "Spark engine").
"""

from __future__ import annotations

import importlib.util

from loyalist.analytics.errors import AnalyticsError

INSTALL_HINT = (
    "the Spark engine needs PySpark: pip install 'loyalist[spark]' (and Java 17+ on the PATH)"
)


class SparkUnavailable(AnalyticsError):
    """``--engine spark`` without PySpark installed."""

    code = "spark_unavailable"


def spark_available() -> bool:
    return importlib.util.find_spec("pyspark") is not None


def require_spark() -> None:
    if not spark_available():
        raise SparkUnavailable(INSTALL_HINT)


__all__ = ["INSTALL_HINT", "SparkUnavailable", "require_spark", "spark_available"]
