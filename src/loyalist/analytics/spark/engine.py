"""The Spark engine: sessions, sources and the per-customer computations.

Every function mirrors its local (polars) twin and returns the same columns:

* :func:`summarise` — :func:`loyalist.analytics.summary.summarise`;
* :func:`rfm_scores` — :func:`loyalist.analytics.rfm.rfm_scores` (average ranks of tied
  values come from the counts of each distinct value, so only the distinct values meet in
  one partition, never the customers);
* :func:`cohort_table` — :func:`loyalist.analytics.cohorts.cohort_table` (each cell's
  revenue by :func:`exact_sums`, the correctly rounded sum, so cells are bit for bit equal);
* :func:`compute_kpis` — :func:`loyalist.analytics.kpis.compute_kpis` (totals by
  :func:`exact_sum`, the correctly rounded sum, so the figures are bit for bit the same);
* :func:`fit_clv` — :func:`loyalist.analytics.clv.fit_clv`: the models are fitted on the
  driver from the distinct (x, t_x, T) and (x, m) rows with their counts (driver memory
  grows with the distinct statistics, not with customers); customers are scored on the
  executors, batch by batch (``mapInArrow``: Arrow batches, as ``mapInPandas`` without the
  pandas conversion), with the very functions the local engine uses.

Times: Spark's session time zone is UTC and the transactions' ``occurred_at`` are the
naive local times of the canonical form (:mod:`loyalist.analytics.io`), so a date is the
local calendar day, as in the local engine.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from loyalist.analytics import exact
from loyalist.analytics.clv import PurchaseModel, discounted_value
from loyalist.analytics.cohorts import Granularity
from loyalist.analytics.errors import InputError
from loyalist.analytics.io import LoadReport, Transactions
from loyalist.analytics.models import BGNBD, GammaGamma, ParetoNBD
from loyalist.analytics.rfm import SEGMENT_GRID, SEGMENTS, RFMConfig
from loyalist.analytics.spark import require_spark
from loyalist.analytics.summary import DateLike, to_date, unit_days

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

_EPOCH = dt.date(1970, 1, 1)

#: where a PostgreSQL JDBC driver is looked for (nothing is downloaded at run time)
JDBC_JAR_GLOBS = (
    "~/.m2/repository/org/postgresql/postgresql/*/postgresql-*.jar",
    "/usr/share/java/postgresql.jar",
    "/usr/share/java/postgresql-jdbc4.jar",
)


def jdbc_jar() -> str | None:
    """A PostgreSQL JDBC driver jar present on this machine ($LOYALIST_SPARK_JDBC_JAR,
    the local Maven repository, or Debian's libpostgresql-jdbc-java), or None."""
    env = os.environ.get("LOYALIST_SPARK_JDBC_JAR")
    if env:
        return env if Path(env).exists() else None
    for pattern in JDBC_JAR_GLOBS:
        found = sorted(glob.glob(os.path.expanduser(pattern)))
        jars = [f for f in found if not f.endswith(("-sources.jar", "-javadoc.jar"))]
        if jars:
            return jars[-1]
    return None


def get_session(
    master: str | None = None,
    *,
    shuffle_partitions: int | None = None,
    driver_memory: str | None = None,
) -> SparkSession:
    """A Spark session: ``local[2]`` by default ($LOYALIST_SPARK_MASTER), a ``spark://``
    master, or a Spark Connect server (``sc://host:15002``).  An active session with the
    same master is reused."""
    require_spark()
    from pyspark.sql import SparkSession

    url = master or os.environ.get("LOYALIST_SPARK_MASTER") or "local[2]"
    # the Python workers run this interpreter (its packages, loyalist among them)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if url.startswith("sc://"):
        return SparkSession.builder.remote(url).getOrCreate()
    builder = (
        SparkSession.builder.master(url)
        .appName("loyalist-analytics")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions or 8))
        # adaptive execution: small shuffles coalesced, skewed joins split
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.adaptive.coalescePartitions.enabled", "true")
    )
    if driver_memory:
        builder = builder.config("spark.driver.memory", driver_memory)
    jar = jdbc_jar()
    if jar:
        builder = builder.config("spark.jars", jar)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


@dataclass
class SparkTransactions:
    """Transactions as a Spark DataFrame (customer_id, occurred_at, amount) and a report.

    ``engine`` lets :mod:`loyalist.analytics.api` route the analyses to this engine.
    """

    frame: DataFrame
    report: LoadReport
    engine: str = "spark"
    #: orders without a customer id (occurred_at, amount, optional columns), KPIs only
    anonymous: DataFrame | None = None

    def day_range(self) -> tuple[dt.date, dt.date]:
        from pyspark.sql import functions as F

        row = self.frame.agg(
            F.min(F.to_date("occurred_at")).alias("a"), F.max(F.to_date("occurred_at")).alias("b")
        ).first()
        if row is None or row["a"] is None:
            raise InputError("no transactions")
        return row["a"], row["b"]

    def last_date(self) -> dt.date:
        return self.day_range()[1]


def _canonical(frame: DataFrame) -> DataFrame:
    """customer_id, occurred_at, amount and ``_seq``, the row's position in the source
    (the ``seq`` column ``loyalist export parquet`` writes, else Spark's row ids, which
    follow the input order within each file).  Money sums follow ``_seq``, as the local
    engine sums in row order, so both engines add the same numbers in the same order."""
    from pyspark.sql import functions as F

    missing = [c for c in ("customer_id", "occurred_at", "amount") if c not in frame.columns]
    if missing:
        raise InputError(f"the Parquet data lacks column(s) {', '.join(missing)}")
    seq = F.col("seq").cast("long") if "seq" in frame.columns else F.monotonically_increasing_id()
    return frame.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        F.col("occurred_at"),
        F.col("amount").cast("double").alias("amount"),
        seq.alias("_seq"),
        *_optional(frame),
    )


#: optional order attributes kept for the KPIs (member flag, ``--where`` filters)
OPTIONAL_COLUMNS = ("is_member", "store", "channel", "tier")


def _optional(frame: DataFrame) -> list[Column]:
    from pyspark.sql import functions as F

    return [
        F.col(c).cast("boolean" if c == "is_member" else "string").alias(c)
        for c in OPTIONAL_COLUMNS
        if c in frame.columns
    ]


def from_transactions(spark: SparkSession, tx: Transactions) -> SparkTransactions:
    """Hand transactions read by the local readers to Spark (through Arrow)."""
    from pyspark.sql import functions as F

    keep = [c for c in OPTIONAL_COLUMNS if c in tx.frame.columns]
    table = tx.frame.select("customer_id", "occurred_at", "amount", *keep).to_arrow()
    frame = spark.createDataFrame(table)
    anonymous = None
    if tx.anonymous is not None and tx.anonymous.height:
        a = tx.anonymous
        extra = [c for c in OPTIONAL_COLUMNS if c in a.columns]
        anon = spark.createDataFrame(a.select("occurred_at", "amount", *extra).to_arrow())
        anonymous = anon.select(
            "occurred_at", F.col("amount").cast("double").alias("amount"), *_optional(anon)
        )
    return SparkTransactions(frame=_canonical(frame), report=tx.report, anonymous=anonymous)


def read_parquet(spark: SparkSession, path: str | Path) -> SparkTransactions:
    """Transactions written by ``loyalist export parquet`` (a file or a directory of parts)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    frame = _canonical(spark.read.parquet(str(p)))
    rows = frame.count()
    report = LoadReport(source=str(p), rows_read=rows, rows_used=rows)
    return SparkTransactions(frame=frame, report=report)


def read_jdbc(
    spark: SparkSession,
    url: str,
    *,
    query: str,
    user: str | None = None,
    password: str | None = None,
    partitions: int = 1,
) -> SparkTransactions:
    """Transactions from a ``SELECT customer_id, occurred_at, amount ...`` on PostgreSQL
    through Spark's JDBC source (``url`` is a ``jdbc:postgresql://`` URL; the driver jar
    must be on the machine, see :func:`jdbc_jar`)."""
    if jdbc_jar() is None:
        raise InputError(
            "no PostgreSQL JDBC driver on this machine (apt-get install "
            "libpostgresql-jdbc-java, or set LOYALIST_SPARK_JDBC_JAR); or write the "
            "orders with 'loyalist export parquet' and read the Parquet"
        )
    reader = (
        spark.read.format("jdbc")
        .option("url", url)
        .option("query", query)
        .option("driver", "org.postgresql.Driver")
    )
    if user:
        reader = reader.option("user", user)
    if password:
        reader = reader.option("password", password)
    frame = _canonical(reader.load())
    if partitions > 1:
        frame = frame.repartition(partitions, "customer_id")
    rows = frame.count()
    return SparkTransactions(
        frame=frame, report=LoadReport(source=url, rows_read=rows, rows_used=rows)
    )


def to_polars(frame: DataFrame, *, sort: str | None = "customer_id") -> pl.DataFrame:
    """Collect a (result-sized) Spark DataFrame into polars through Arrow."""
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out.sort(sort) if sort else out


def _day(col: str = "occurred_at") -> Column:
    from pyspark.sql import functions as F

    return F.datediff(F.to_date(F.col(col)), F.lit(_EPOCH)).cast("int")


def _ordered_rows() -> Column:
    """Per group: the (seq, day, amount) of its rows in source order."""
    from pyspark.sql import functions as F

    rows = F.collect_list(
        F.struct(F.col("_seq").alias("s"), F.col("_day").alias("d"), F.col("amount").alias("a"))
    )
    return F.array_sort(rows)


def _running_sum(rows: Column) -> Column:
    """0.0 + a1 + a2 + ... in row order: the local engine's sums (numpy ``bincount`` and
    polars group sums add in row order), bit for bit."""
    from pyspark.sql import functions as F

    return F.aggregate(rows, F.lit(0.0).cast("double"), lambda acc, r: acc + r["a"])


def _date_of(days: Column) -> Column:
    from pyspark.sql import functions as F

    return F.date_add(F.lit(_EPOCH), days.cast("int"))


# --------------------------------------------------------------------------- summary


def summarise(
    stx: SparkTransactions, *, observation_end: DateLike | None = None, unit: str | float = "W"
) -> DataFrame:
    """The calibration summary (columns of the local :func:`summarise`), one row per
    customer acquired on or before ``observation_end``."""
    from pyspark.sql import functions as F

    end = to_date(observation_end, "observation_end") if observation_end else stx.last_date()
    days = unit_days(unit)
    end_day = (end - _EPOCH).days
    tx = stx.frame.select("customer_id", _day().alias("_day"), "amount", "_seq").filter(
        F.col("_day") <= end_day
    )
    per = tx.groupBy("customer_id").agg(
        F.min("_day").alias("_first"),
        F.max("_day").alias("_last"),
        F.count_distinct("_day").alias("_days"),
        F.count(F.lit(1)).alias("_orders"),
        _ordered_rows().alias("_rows"),
    )
    per = per.select(
        "*",
        _running_sum(F.col("_rows")).alias("revenue"),
        _running_sum(F.filter("_rows", lambda r: r["d"] == F.col("_first"))).alias("_first_amount"),
    )
    freq = (F.col("_days") - 1).cast("long")
    return per.select(
        "customer_id",
        freq.alias("frequency"),
        ((F.col("_last") - F.col("_first")).cast("double") / F.lit(days)).alias("recency"),
        ((F.lit(end_day) - F.col("_first")).cast("double") / F.lit(days)).alias("T"),
        F.when(freq > 0, (F.col("revenue") - F.col("_first_amount")) / freq.cast("double"))
        .otherwise(F.lit(0.0))
        .alias("monetary_value"),
        _date_of(F.col("_first")).alias("first_purchase"),
        _date_of(F.col("_last")).alias("last_purchase"),
        F.col("_orders").cast("int").alias("orders"),
        "revenue",
    )


# --------------------------------------------------------------------------- RFM


def customer_rfm(stx: SparkTransactions, as_of: DateLike | None = None) -> DataFrame:
    from pyspark.sql import functions as F

    end = to_date(as_of, "as_of") if as_of else stx.last_date()
    end_day = (end - _EPOCH).days
    tx = stx.frame.select("customer_id", _day().alias("_day"), "amount", "_seq").filter(
        F.col("_day") <= end_day
    )
    per = tx.groupBy("customer_id").agg(
        F.max("_day").alias("_last"),
        F.min("_day").alias("_first"),
        F.count(F.lit(1)).alias("frequency"),
        _running_sum(_ordered_rows()).alias("monetary"),
    )
    return per.select(
        "customer_id",
        (F.lit(end_day) - F.col("_last")).cast("long").alias("recency_days"),
        "frequency",
        "monetary",
        _date_of(F.col("_first")).alias("first_purchase"),
        _date_of(F.col("_last")).alias("last_purchase"),
    )


def _with_quantile_score(
    base: DataFrame, col: str, out: str, bins: int, n: int, *, reverse: bool
) -> DataFrame:
    """``out`` = ceil(bins * rank / n) clipped to 1..bins, with the average rank of ties
    (polars' ``rank("average")``) from the counts of each distinct value."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    counts = base.groupBy(col).agg(F.count(F.lit(1)).alias("_c"))
    window = Window.orderBy(col).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    ranked = counts.withColumn("_cum", F.sum("_c").over(window))
    # twice the average rank, an integer; score = ceil(bins * rank / n) in integers
    rank2 = (F.col("_cum") - F.col("_c")) * 2 + F.col("_c") + 1
    if reverse:
        rank2 = F.lit(2 * (n + 1)) - rank2
    top = (rank2 * F.lit(bins) + F.lit(2 * n - 1)).cast("long")
    score = ((top - F.pmod(top, F.lit(2 * n))) / F.lit(2 * n)).cast("long")  # exact floor
    score = F.least(F.greatest(score, F.lit(1)), F.lit(bins)).cast("tinyint")
    table = ranked.select(col, score.alias(out))
    return base.join(F.broadcast(table) if n < 200_000 else table, on=col, how="left")


def _threshold_score(col: str, thresholds: tuple[float, ...], *, reverse: bool) -> Column:
    from pyspark.sql import functions as F

    bins = len(thresholds) + 1
    count: Column = F.lit(0)
    for t in thresholds:
        count = count + (F.col(col) > F.lit(float(t))).cast("int")
    return (F.lit(bins) - count if reverse else count + 1).cast("tinyint")


def rfm_scores(
    stx: SparkTransactions, as_of: DateLike | None = None, config: RFMConfig | None = None
) -> DataFrame:
    """The local :func:`loyalist.analytics.rfm.rfm_scores`, on Spark (same columns)."""
    from pyspark.sql import functions as F

    cfg = config or RFMConfig()
    base = customer_rfm(stx, as_of).cache()
    n = base.count()
    if n == 0:
        base.unpersist()
        raise InputError("no customers with purchases on or before the as-of date")
    b = cfg.bins
    scored = base
    for col, out, th, reverse in (
        ("recency_days", "r_score", cfg.recency_thresholds, True),
        ("frequency", "f_score", cfg.frequency_thresholds, False),
        ("monetary", "m_score", cfg.monetary_thresholds, False),
    ):
        if th is not None:
            scored = scored.withColumn(out, _threshold_score(col, tuple(th), reverse=reverse))
        else:
            scored = _with_quantile_score(scored, col, out, b, n, reverse=reverse)

    def to5(c: Column) -> Column:
        v = F.ceil(c.cast("double") * F.lit(5.0) / F.lit(float(b)))
        return F.least(F.greatest(v, F.lit(1)), F.lit(5)).cast("int")

    r5 = to5(F.col("r_score"))
    fm5 = F.floor((to5(F.col("f_score")) + to5(F.col("m_score"))).cast("double") / 2.0 + 0.5)
    key = r5 * 10 + fm5.cast("int")
    pairs: list[Column] = []
    for r_score, row in SEGMENT_GRID.items():
        for fm_score, name in enumerate(row, start=1):
            pairs += [F.lit(r_score * 10 + fm_score), F.lit(name)]
    segment = F.element_at(F.create_map(*pairs), key)
    return scored.select(
        "customer_id",
        "recency_days",
        "frequency",
        "monetary",
        "first_purchase",
        "last_purchase",
        "r_score",
        "f_score",
        "m_score",
        F.concat(
            F.col("r_score").cast("string"),
            F.col("f_score").cast("string"),
            F.col("m_score").cast("string"),
        ).alias("rfm_code"),
        segment.alias("segment"),
    )


def rfm_to_polars(scores: DataFrame) -> pl.DataFrame:
    """The RFM table with the local engine's dtypes, sorted by customer id."""
    return to_polars(scores).with_columns(
        pl.col("frequency").cast(pl.UInt32),
        pl.col("r_score").cast(pl.Int8),
        pl.col("f_score").cast(pl.Int8),
        pl.col("m_score").cast(pl.Int8),
    )


def segment_summary(scores: DataFrame) -> pl.DataFrame:
    """:func:`loyalist.analytics.rfm.segment_summary` from the Spark RFM table (only the
    per-segment rows come to the driver)."""
    from pyspark.sql import functions as F

    agg = to_polars(
        scores.groupBy("segment").agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum("monetary").alias("revenue"),
            F.avg("recency_days").alias("mean_recency_days"),
            F.avg("frequency").alias("mean_frequency"),
            F.avg("monetary").alias("mean_monetary"),
        ),
        sort=None,
    )
    total_c = int(agg["customers"].sum())
    total_m = float(agg["revenue"].sum()) or 1.0
    order = pl.DataFrame({"segment": list(SEGMENTS), "_order": list(range(len(SEGMENTS)))})
    return (
        agg.with_columns(
            pl.col("customers").cast(pl.UInt32),
            (pl.col("customers") / total_c).alias("customer_share"),
            (pl.col("revenue") / total_m).alias("revenue_share"),
        )
        .join(order, on="segment", how="left")
        .sort("_order")
        .select(
            "segment",
            "customers",
            "customer_share",
            "revenue",
            "revenue_share",
            "mean_recency_days",
            "mean_frequency",
            "mean_monetary",
        )
    )


# --------------------------------------------------------------------------- cohorts


def cohort_table(stx: SparkTransactions, granularity: Granularity = "month") -> DataFrame:
    """The local :func:`loyalist.analytics.cohorts.cohort_table`, on Spark (same columns)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if granularity not in ("month", "week"):
        raise InputError("cohort granularity must be 'month' or 'week'")
    unit = "month" if granularity == "month" else "week"
    f = stx.frame.select(
        "customer_id", F.trunc(F.to_date("occurred_at"), unit).alias("period"), "amount"
    )

    def index(period: Column, cohort: Column) -> Column:
        if granularity == "month":
            return (F.year(period) - F.year(cohort)) * 12 + F.month(period) - F.month(cohort)
        return F.floor(F.datediff(period, cohort) / 7)

    first = f.groupBy("customer_id").agg(F.min("period").alias("cohort"))
    row = f.agg(F.max("period").alias("p")).first()
    if row is None or row["p"] is None:
        raise InputError("no transactions")
    last_period = row["p"]
    rows = f.join(first, on="customer_id").withColumn(
        "period_index", index(F.col("period"), F.col("cohort")).cast("int")
    )
    # revenue per cell exactly (integer mantissas per exponent, rounded once on the driver)
    sums = exact_sums(rows, "amount", ("cohort", "period_index"))
    revenue = stx.frame.sparkSession.createDataFrame(
        [(c, p, v) for (c, p), v in sums.items()],
        "cohort date, period_index int, revenue double",
    )
    per = (
        rows.groupBy("cohort", "period_index")
        .agg(
            F.countDistinct("customer_id").alias("active"),
            F.count(F.lit(1)).alias("orders"),
        )
        .join(F.broadcast(revenue), on=["cohort", "period_index"], how="left")
    )
    sizes = first.groupBy("cohort").agg(F.count(F.lit(1)).alias("cohort_size"))
    grid = sizes.withColumn(
        "period_index",
        F.explode(F.sequence(F.lit(0), index(F.lit(last_period), F.col("cohort")).cast("int"))),
    )
    joined = grid.join(per, on=["cohort", "period_index"], how="left").select(
        "cohort",
        "period_index",
        "cohort_size",
        F.coalesce(F.col("active"), F.lit(0)).alias("active"),
        F.coalesce(F.col("orders"), F.lit(0)).alias("orders"),
        F.coalesce(F.col("revenue"), F.lit(0.0)).alias("revenue"),
    )
    window = (
        Window.partitionBy("cohort")
        .orderBy("period_index")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    rpc = F.col("revenue") / F.col("cohort_size")
    return joined.select(
        "cohort",
        "period_index",
        "cohort_size",
        "active",
        (F.col("active") / F.col("cohort_size")).alias("retention"),
        "orders",
        "revenue",
        rpc.alias("revenue_per_customer"),
        F.sum(rpc).over(window).alias("cumulative_revenue_per_customer"),
    )


def cohorts_to_polars(table: DataFrame) -> pl.DataFrame:
    """The cohort table with the local engine's dtypes, sorted by cohort and period."""
    out = pl.from_arrow(table.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out.with_columns(
        pl.col("period_index").cast(pl.Int32),
        pl.col("cohort_size").cast(pl.UInt32),
        pl.col("active").cast(pl.UInt32),
        pl.col("orders").cast(pl.UInt32),
    ).sort("cohort", "period_index")


# --------------------------------------------------------------------------- CLV


def _numpy(frame: DataFrame, cols: list[str]) -> list[np.ndarray[Any, Any]]:
    table = frame.toArrow()
    return [np.asarray(table.column(c).to_numpy(), dtype=np.float64) for c in cols]


def sufficient_statistics(summary: DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The distinct (frequency, recency, T) rows and the distinct (frequency,
    monetary_value) rows of a summary, each with its count (``n``), sorted."""
    from pyspark.sql import functions as F

    rft = summary.groupBy("frequency", "recency", "T").agg(F.count(F.lit(1)).alias("n"))
    xm = summary.groupBy("frequency", "monetary_value").agg(F.count(F.lit(1)).alias("n"))
    return (
        to_polars(rft, sort=None).sort("frequency", "recency", "T"),
        to_polars(xm, sort=None).sort("frequency", "monetary_value"),
    )


@dataclass(frozen=True)
class SparkCLVResult:
    """Fitted models and the scored customers (a Spark DataFrame)."""

    purchase_model: PurchaseModel
    spend_model: GammaGamma
    customers: DataFrame
    unit: str | float
    horizon_days: float
    discount_rate_annual: float
    margin: float
    distinct_rft: int
    distinct_xm: int

    def to_dict(self) -> dict[str, object]:
        from pyspark.sql import functions as F

        assert self.purchase_model.fit_result is not None
        assert self.spend_model.fit_result is not None
        row = self.customers.agg(
            F.count(F.lit(1)).alias("n"),
            F.sum("clv").alias("clv"),
            F.sum("probability_alive").alias("alive"),
            F.sum("expected_purchases").alias("expected"),
        ).first()
        assert row is not None
        n = int(row["n"])
        return {
            "purchase_model": self.purchase_model.fit_result.to_dict(),
            "spend_model": self.spend_model.fit_result.to_dict(),
            "unit": self.unit,
            "horizon_days": self.horizon_days,
            "discount_rate_annual": self.discount_rate_annual,
            "margin": self.margin,
            "customers": n,
            "total_clv": float(row["clv"] or 0.0),
            "mean_clv": float(row["clv"] or 0.0) / max(n, 1),
            "mean_probability_alive": float(row["alive"] or 0.0) / max(n, 1),
            "expected_purchases_total": float(row["expected"] or 0.0),
        }


def fit_models(
    summary: DataFrame, model: str = "bgnbd"
) -> tuple[PurchaseModel, GammaGamma, int, int]:
    """Fit the purchase and spend models on the driver from the sufficient statistics."""
    rft, xm = sufficient_statistics(summary)
    if rft.height == 0:
        raise InputError("no customers to fit")
    x = rft["frequency"].to_numpy().astype(np.float64)
    t_x = rft["recency"].to_numpy().astype(np.float64)
    big_t = rft["T"].to_numpy().astype(np.float64)
    w = rft["n"].to_numpy().astype(np.float64)
    pm: PurchaseModel
    if model == "paretonbd":
        pm = ParetoNBD.fit(x, t_x, big_t, weights=w)
    else:
        pm = BGNBD.fit(x, t_x, big_t, weights=w)
    gg = GammaGamma.fit(
        xm["frequency"].to_numpy().astype(np.float64),
        xm["monetary_value"].to_numpy().astype(np.float64),
        weights=xm["n"].to_numpy().astype(np.float64),
    )
    return pm, gg, rft.height, xm.height


def _scorer(
    pm: PurchaseModel,
    gg: GammaGamma,
    *,
    horizon: float,
    periods: int,
    period_length: float,
    rate: float,
    margin: float,
) -> Any:
    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in batches:
            x = np.asarray(batch.column("frequency").to_numpy(), dtype=np.float64)
            t_x = np.asarray(batch.column("recency").to_numpy(), dtype=np.float64)
            big_t = np.asarray(batch.column("T").to_numpy(), dtype=np.float64)
            m = np.asarray(batch.column("monetary_value").to_numpy(), dtype=np.float64)
            if x.size == 0:
                alive = expected = spend = clv = np.zeros(0)
            else:
                alive = pm.probability_alive(x, t_x, big_t)
                expected = pm.conditional_expected_purchases(horizon, x, t_x, big_t)
                spend = gg.conditional_expected_value(x, m)
                clv = discounted_value(
                    pm,
                    spend,
                    x,
                    t_x,
                    big_t,
                    periods=periods,
                    period_length=period_length,
                    discount_rate=rate,
                    margin=margin,
                )
            arrays = [*batch.columns, pa.array(alive), pa.array(expected)]
            arrays += [pa.array(spend), pa.array(clv)]
            names = [*batch.schema.names, "probability_alive", "expected_purchases"]
            names += ["expected_spend", "clv"]
            yield pa.RecordBatch.from_arrays(arrays, names=names)

    return score


def fit_clv(
    summary: DataFrame,
    *,
    model: str = "bgnbd",
    unit: str | float = "W",
    horizon_days: float = 365.0,
    discount_rate_annual: float = 0.10,
    margin: float = 1.0,
    period_days: float = 365.25 / 12.0,
) -> SparkCLVResult:
    """The local :func:`loyalist.analytics.clv.fit_clv` on a Spark summary."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    if not 0 < margin <= 1.0:
        raise InputError("margin must be in (0, 1]")
    pm, gg, n_rft, n_xm = fit_models(summary, model)
    days = unit_days(unit)
    periods = max(1, round(horizon_days / period_days))
    rate = (1.0 + discount_rate_annual) ** (period_days / 365.25) - 1.0
    schema = StructType(
        [
            *summary.schema.fields,
            *(
                StructField(name, DoubleType(), True)
                for name in ("probability_alive", "expected_purchases", "expected_spend", "clv")
            ),
        ]
    )
    scorer = _scorer(
        pm,
        gg,
        horizon=horizon_days / days,
        periods=periods,
        period_length=period_days / days,
        rate=rate,
        margin=margin,
    )
    customers = summary.mapInArrow(scorer, schema)
    return SparkCLVResult(
        purchase_model=pm,
        spend_model=gg,
        customers=customers,
        unit=unit,
        horizon_days=horizon_days,
        discount_rate_annual=discount_rate_annual,
        margin=margin,
        distinct_rft=n_rft,
        distinct_xm=n_xm,
    )


def summary_to_polars(summary: DataFrame) -> pl.DataFrame:
    """A Spark summary (or scored customers) with the local dtypes, sorted by customer."""
    return to_polars(summary).with_columns(pl.col("orders").cast(pl.UInt32))


# --------------------------------------------------------------------------- exact sums


def exact_sums(
    frame: DataFrame, col: str, keys: tuple[str, ...] = ()
) -> dict[tuple[Any, ...], float]:
    """The correctly rounded sum of the doubles in ``col`` per group of ``keys`` — the
    value :func:`math.fsum` gives, whatever the partitions and the order of the rows.
    Groups whose values are all zero or null are absent.

    Each value is split into its binary exponent ``e`` and its 53-bit integer mantissa
    ``m`` (``x = m * 2**(e - 52)``, exact); the mantissas are added as integers per group
    and exponent in Spark (two halves, :mod:`loyalist.analytics.exact`) and the few
    (exponent, sum) rows of each group are added exactly on the driver and rounded once
    (:func:`loyalist.analytics.exact.correctly_rounded`, shared with the local engine).
    """
    from pyspark.sql import functions as F

    x = F.col("_x")
    a = F.abs(x)
    e0 = F.floor(F.log2(a)).cast("int")
    two = F.lit(2.0)
    e = F.greatest(  # subnormals share the exponent of the smallest normal numbers
        F.when(a < F.pow(two, e0), e0 - 1).when(a >= F.pow(two, e0 + 1), e0 + 1).otherwise(e0),
        F.lit(-1022),
    )
    parts = (
        frame.select(*keys, F.col(col).cast("double").alias("_x"))
        .filter((x != 0.0) & x.isNotNull())
        .select(
            *keys,
            e.alias("_e"),
            (F.col("_x") / F.pow(two, e - 52)).cast("long").alias("_m"),
        )
        .select(
            *keys,
            "_e",
            F.shiftright(F.col("_m"), exact.LOW_BITS).alias("_hi"),
            F.col("_m").bitwiseAND(F.lit((1 << exact.LOW_BITS) - 1)).alias("_lo"),
        )
        .groupBy(*keys, "_e")
        .agg(F.sum("_hi").alias("hi"), F.sum("_lo").alias("lo"))
        .collect()
    )
    grouped: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for row in parts:
        mantissa = (int(row["hi"]) << exact.LOW_BITS) + int(row["lo"])
        key = tuple(row[k] for k in keys)
        grouped.setdefault(key, []).append((int(row["_e"]) - 52, mantissa))
    return {key: exact.correctly_rounded(p) for key, p in grouped.items()}


def exact_sum(frame: DataFrame, col: str) -> float:
    """The correctly rounded sum of the doubles in ``col`` (:func:`exact_sums`)."""
    return exact_sums(frame, col).get((), 0.0)


# --------------------------------------------------------------------------- KPIs


def _between(lo: int, hi: int) -> Column:
    from pyspark.sql import functions as F

    return (F.col("_day") >= F.lit(lo)) & (F.col("_day") <= F.lit(hi))


def _kpi_group(
    rows: DataFrame,
    anonymous: DataFrame | None,
    s_day: int,
    e_day: int,
    total_revenue: float,
) -> dict[str, float]:
    """:func:`loyalist.analytics.kpis._compute` on Spark: the group's figures aggregated
    here (per-customer revenue in row order, totals by :func:`exact_sum`), the KPIs built
    from them by :func:`loyalist.analytics.kpis.assemble_kpis`, as the local engine does."""
    from pyspark.sql import functions as F

    from loyalist.analytics.kpis import GroupFigures, assemble_kpis

    length = e_day - s_day + 1
    cur = rows.filter(_between(s_day, e_day))
    prev_ids = rows.filter(_between(s_day - length, s_day - 1)).select("customer_id").distinct()
    before = rows.filter(F.col("_day") < F.lit(s_day)).select("customer_id").distinct()
    per = (
        cur.groupBy("customer_id")
        .agg(
            F.count(F.lit(1)).alias("orders"),
            _running_sum(_ordered_rows()).alias("revenue"),
            F.count_distinct("_day").alias("days"),
        )
        .cache()
    )
    try:
        stats = per.agg(
            F.count(F.lit(1)).alias("n"),
            F.sum("orders").alias("orders"),
            F.sum(F.when(F.col("days") >= 2, 1).otherwise(0)).alias("repeaters"),
        ).first()
        assert stats is not None
        active = int(stats["n"])
        anon_orders, anon_revenue = 0, 0.0
        if anonymous is not None:
            anon_cur = anonymous.filter(_between(s_day, e_day)).cache()
            anon_orders = anon_cur.count()
            anon_revenue = exact_sum(anon_cur, "amount") if anon_orders else 0.0
            anon_cur.unpersist()
        n_prev = prev_ids.count()
        figures = GroupFigures(
            active=active,
            new=per.join(before, on="customer_id", how="left_anti").count() if active else 0,
            customer_orders=int(stats["orders"] or 0),
            customer_revenue=exact_sum(per, "revenue") if active else 0.0,
            repeaters=int(stats["repeaters"] or 0),
            previous_active=n_prev,
            retained=(
                prev_ids.join(per.select("customer_id"), on="customer_id", how="left_semi").count()
                if n_prev
                else 0
            ),
            anonymous_orders=anon_orders,
            anonymous_revenue=anon_revenue,
            identified=rows.limit(1).count() > 0 if anon_orders else True,
        )

        def top_revenue(k: int) -> float:
            top = per.orderBy(F.col("revenue").desc(), F.col("customer_id")).limit(k)
            return exact_sum(top, "revenue")

        return assemble_kpis(figures, total_revenue, top_revenue)
    finally:
        per.unpersist()


def compute_kpis(
    stx: SparkTransactions,
    start: DateLike | None = None,
    end: DateLike | None = None,
    *,
    customers: DataFrame | None = None,
    segment_name: str | None = None,
    where: dict[str, str] | None = None,
) -> Any:
    """:func:`loyalist.analytics.kpis.compute_kpis` on Spark (a :class:`KPIReport` with the
    same figures); ``customers`` is a Spark DataFrame with a ``customer_id`` column."""
    from pyspark.sql import functions as F

    from loyalist.analytics.kpis import FILTER_COLUMNS, KPIReport

    frame = stx.frame.withColumn("_day", _day())
    anonymous = stx.anonymous.withColumn("_day", _day()) if stx.anonymous is not None else None

    def days(f: DataFrame, a: DataFrame | None) -> DataFrame:
        both = f.select("_day", "amount")
        return both.unionByName(a.select("_day", "amount")) if a is not None else both

    everything = days(frame, anonymous)
    row = everything.agg(F.min("_day").alias("a"), F.max("_day").alias("b")).first()
    if row is None or row["a"] is None:
        raise InputError("no transactions")
    first_day, last_day = int(row["a"]), int(row["b"])
    e = to_date(end, "end") if end else _EPOCH + dt.timedelta(days=last_day)
    s = to_date(start, "start") if start else e - dt.timedelta(days=29)
    if s > e:
        raise InputError("KPI period start is after its end")
    if e < _EPOCH + dt.timedelta(days=first_day):
        raise InputError("the KPI period ends before the first transaction")
    for column, value in (where or {}).items():
        if column not in FILTER_COLUMNS:
            raise InputError(
                f"cannot filter on {column!r}: use one of {', '.join(sorted(FILTER_COLUMNS))}"
            )
        if column not in frame.columns:
            raise InputError(f"the data have no {column!r} column to filter on")
        frame = frame.filter(F.col(column) == F.lit(value))
        if anonymous is not None and column in anonymous.columns:
            anonymous = anonymous.filter(F.col(column) == F.lit(value))
        if frame.limit(1).count() == 0 and (anonymous is None or anonymous.limit(1).count() == 0):
            raise InputError(f"no orders with {column} = {value!r}")
        everything = days(frame, anonymous)
    s_day, e_day = (s - _EPOCH).days, (e - _EPOCH).days
    total_revenue = exact_sum(everything.filter(_between(s_day, e_day)), "amount")
    if customers is not None:
        frame = frame.join(customers.select("customer_id"), on="customer_id", how="left_semi")
        anonymous = None
    frame = frame.cache()
    try:
        overall = _kpi_group(frame, anonymous, s_day, e_day, total_revenue)
        members = non_members = None
        if "is_member" in stx.frame.columns:
            members = _kpi_group(
                frame.filter(F.col("is_member")), None, s_day, e_day, total_revenue
            )
            non_members = _kpi_group(
                frame.filter(~F.col("is_member")), anonymous, s_day, e_day, total_revenue
            )
        n_anon = anonymous.filter(_between(s_day, e_day)).count() if anonymous is not None else 0
    finally:
        frame.unpersist()
    return KPIReport(
        start=s,
        end=e,
        overall=overall,
        members=members,
        non_members=non_members,
        segment=segment_name,
        anonymous_orders=n_anon,
        where=dict(where) if where else None,
    )
