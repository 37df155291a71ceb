"""``loyalist analyze``: rfm | cohorts | kpis | clv | segments | report.

Every command reads transactions from ``--input`` (CSV, TSV, whitespace-separated text or
Parquet; ``--cdnow`` for the CDNOW files) or ``--database-url`` (the platform's orders by
default), prints a table, or JSON with ``--json`` (exactly what the Python API in
:mod:`loyalist.analytics.api` returns).  Errors go to stderr (or, with ``--json``, to stdout
as ``{"error": ...}``) with exit status 2.
"""

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from loyalist.analytics.errors import AnalyticsError, InputError
from loyalist.analytics.i18n import (
    DEFAULT_TIMEZONE,
    MODEL_NAMES,
    fmt_kpi,
    kpi_label,
    segment_label,
)

if TYPE_CHECKING:
    from loyalist.analytics.io import ColumnMap, Transactions

# Polars, SciPy and scikit-learn are imported inside the commands: the main ``loyalist``
# command mounts this app, and its other commands should not pay for them.

app = typer.Typer(
    name="analyze",
    help="Customer analytics: RFM, cohorts, KPIs, lifetime value, segments, HTML report.",
    no_args_is_help=True,
    add_completion=False,
)

out = Console()
err = Console(stderr=True)

# --------------------------------------------------------------------------- input options

_COLUMN_KEYS = {
    "customer": "customer",
    "time": "timestamp",
    "timestamp": "timestamp",
    "date": "timestamp",
    "amount": "amount",
    "refund": "refund",
    "order": "order_id",
    "order_id": "order_id",
    "store": "store",
    "channel": "channel",
    "member": "member",
    "tier": "tier",
}


def _option(name: str, default: object, annotation: object) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


SOURCE_PARAMS: list[inspect.Parameter] = [
    _option(
        "input",
        None,
        Annotated[
            Path | None,
            typer.Option(
                "--input", "-i", help="CSV, TSV, whitespace-separated text or Parquet file."
            ),
        ],
    ),
    _option(
        "database_url",
        None,
        Annotated[
            str | None,
            typer.Option(
                "--database-url",
                help="SQLAlchemy URL; reads the platform's orders unless --query/--table. "
                "Without --input or --database-url: $LOYALIST_ANALYTICS_DATABASE_URL, "
                "then $LOYALIST_DATABASE_URL.",
            ),
        ],
    ),
    _option(
        "query",
        None,
        Annotated[str | None, typer.Option(help="SELECT to run on the database.")],
    ),
    _option(
        "table",
        None,
        Annotated[
            str | None, typer.Option(help="Table to read (with --columns) instead of orders.")
        ],
    ),
    _option(
        "columns",
        None,
        Annotated[
            str | None,
            typer.Option(
                help="Column names, e.g. 'customer=cust_id,time=paid_at,amount=total,"
                "refund=refunded,order=order_no,member=is_member,store=shop,channel=src,"
                "tier=level'.",
            ),
        ],
    ),
    _option(
        "date_format",
        None,
        Annotated[
            str | None, typer.Option(help="strftime format of the time column, e.g. %Y%m%d.")
        ],
    ),
    _option(
        "separator",
        ",",
        Annotated[
            str,
            typer.Option(help="Field separator of a text file: a character, or 'whitespace'."),
        ],
    ),
    _option(
        "no_header",
        False,
        Annotated[
            bool,
            typer.Option(
                "--no-header", help="The text file has no header: columns are column_1, ..."
            ),
        ],
    ),
    _option(
        "timezone",
        None,
        Annotated[
            str | None,
            typer.Option(
                help="Zone whose calendar decides days and months (default: the programme's "
                f"zone in the platform's database, else {DEFAULT_TIMEZONE})."
            ),
        ],
    ),
    _option(
        "source_timezone",
        None,
        Annotated[
            str | None,
            typer.Option(
                help="Zone of timestamps without an offset (default: --timezone; UTC for "
                "the platform's orders)."
            ),
        ],
    ),
    _option(
        "amount_scale",
        None,
        Annotated[
            float | None,
            typer.Option(help="Multiply amounts by this (default 0.01 for the platform's fen)."),
        ],
    ),
    _option(
        "keep_zero",
        False,
        Annotated[bool, typer.Option("--keep-zero", help="Keep zero-amount rows as purchases.")],
    ),
    _option(
        "anonymous",
        False,
        Annotated[
            bool,
            typer.Option(
                "--anonymous",
                help="Rows without a customer id are anonymous orders (KPIs only), not errors.",
            ),
        ],
    ),
    _option(
        "cdnow",
        False,
        Annotated[
            bool,
            typer.Option(
                "--cdnow", help="--input is a CDNOW text file ($0 lines need --keep-zero)."
            ),
        ],
    ),
]
_SOURCE_NAMES = [p.name for p in SOURCE_PARAMS]

#: commands that run on Spark with ``--engine spark`` (loyalist.analytics.spark)
SPARK_COMMANDS = {"rfm_command", "cohorts_command", "clv_command", "kpis_command"}

ENGINE_PARAMS: list[inspect.Parameter] = [
    _option(
        "engine",
        "local",
        Annotated[
            str,
            typer.Option(
                help="local (polars, one machine) or spark (needs pip install "
                "'loyalist[spark]'; a Parquet --input is read by Spark itself)."
            ),
        ],
    ),
    _option(
        "spark_master",
        None,
        Annotated[
            str | None,
            typer.Option(
                help="With --engine spark: local[N] (default local[2]), spark://host:7077 "
                "or a Spark Connect URL sc://host:15002 (default $LOYALIST_SPARK_MASTER)."
            ),
        ],
    ),
]


def load_engine_source(source: dict[str, object], engine: str, master: str | None) -> object:
    """The transactions for ``engine``: local :class:`Transactions`, or Spark's (a Parquet
    ``--input`` file or directory is read by Spark; other sources are read locally and
    handed over)."""
    if engine not in ("local", "spark"):
        raise InputError("--engine must be local or spark")
    if engine == "local":
        return load_source(**source)  # type: ignore[arg-type]
    from loyalist.analytics.spark import require_spark

    require_spark()
    from loyalist.analytics.spark import api as spark_api

    path = source.get("input")
    if (
        isinstance(path, Path)
        and not source.get("cdnow")
        and (path.is_dir() or path.suffix.lower() == ".parquet")
    ):
        return spark_api.load(path, master=master)
    return spark_api.load(load_source(**source), master=master)  # type: ignore[arg-type]


def parse_columns(spec: str | None, base: "ColumnMap") -> "ColumnMap":
    from loyalist.analytics.io import ColumnMap

    if not spec:
        return base
    values: dict[str, str | None] = {
        "customer": base.customer,
        "timestamp": base.timestamp,
        "amount": base.amount,
        "order_id": base.order_id,
        "store": base.store,
        "channel": base.channel,
        "member": base.member,
        "tier": base.tier,
        "refund": base.refund,
    }
    for part in spec.split(","):
        if not part.strip():
            continue
        key, sep, name = part.partition("=")
        field = _COLUMN_KEYS.get(key.strip().lower())
        if not sep or field is None or not name.strip():
            raise InputError(
                f"bad --columns entry {part!r}: use key=name with key one of "
                + ", ".join(sorted(set(_COLUMN_KEYS)))
            )
        values[field] = name.strip()
    return ColumnMap(
        customer=values["customer"] or base.customer,
        timestamp=values["timestamp"] or base.timestamp,
        amount=values["amount"] or base.amount,
        order_id=values["order_id"],
        store=values["store"],
        channel=values["channel"],
        member=values["member"],
        tier=values["tier"],
        refund=values["refund"],
    )


def load_source(
    *,
    input: Path | None,
    database_url: str | None,
    query: str | None,
    table: str | None,
    columns: str | None,
    date_format: str | None,
    separator: str,
    no_header: bool,
    timezone: str | None,
    source_timezone: str | None,
    amount_scale: float | None,
    keep_zero: bool,
    anonymous: bool,
    cdnow: bool,
) -> "Transactions":
    """Read the transactions the options name (the same call the Python API makes)."""
    from loyalist.analytics.io import (
        PLATFORM_COLUMNS,
        ColumnMap,
        read_cdnow,
        read_database,
        read_transactions,
    )

    if input is not None and database_url is not None:
        raise InputError("give exactly one of --input FILE or --database-url URL")
    if input is None and database_url is None:
        database_url = os.environ.get("LOYALIST_ANALYTICS_DATABASE_URL") or os.environ.get(
            "LOYALIST_DATABASE_URL"
        )
        if not database_url:
            raise InputError(
                "give --input FILE or --database-url URL (or set LOYALIST_DATABASE_URL)"
            )
    if database_url is not None:
        platform = query is None and table is None
        return read_database(
            database_url,
            query=query,
            table=table,
            columns=parse_columns(columns, PLATFORM_COLUMNS if platform else ColumnMap()),
            timezone=timezone,
            naive_timezone=source_timezone,
            amount_scale=amount_scale,
            keep_zero=keep_zero,
            anonymous=True if platform else anonymous,
        )
    assert input is not None
    if cdnow:
        return read_cdnow(input, keep_zero=keep_zero)
    return read_transactions(
        input,
        parse_columns(columns, ColumnMap()),
        date_format=date_format,
        timezone=timezone or DEFAULT_TIMEZONE,
        naive_timezone=source_timezone,
        amount_scale=1.0 if amount_scale is None else amount_scale,
        separator=separator,
        has_header=not no_header,
        keep_zero=keep_zero,
        anonymous=anonymous,
    )


def _error_payload(exc: AnalyticsError) -> dict[str, object]:
    body: dict[str, object] = {"code": exc.code, "message": str(exc)}
    if isinstance(exc, InputError):
        if exc.rows:
            body["rows"] = exc.rows
        if exc.order_ids:
            body["order_ids"] = exc.order_ids
        if exc.column:
            body["column"] = exc.column
    return {"error": body}


def with_source(func: Callable[..., None]) -> Callable[..., None]:
    """Add the input options to a command; the command receives ``tx`` instead."""
    sig = inspect.signature(func)
    own = [p for p in sig.parameters.values() if p.name != "tx"]
    spark = func.__name__ in SPARK_COMMANDS

    @functools.wraps(func)
    def wrapper(**kwargs: object) -> None:
        source = {name: kwargs.pop(name) for name in _SOURCE_NAMES}
        engine = str(kwargs.pop("engine", "local"))
        master = kwargs.pop("spark_master", None)
        as_json = bool(kwargs.get("as_json", False))
        try:
            with steps(["read"], quiet=as_json) as advance:
                tx = load_engine_source(source, engine, None if master is None else str(master))
                advance()
            func(tx=tx, **kwargs)
        except AnalyticsError as exc:
            if as_json:
                sys.stdout.write(orjson.dumps(_error_payload(exc)).decode() + "\n")
            else:
                err.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, markup=True)
            raise typer.Exit(code=2) from None

    params = own + SOURCE_PARAMS + (ENGINE_PARAMS if spark else [])
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__
    return wrapper


_STEP_LABELS = {
    "read": "Reading transactions",
    "summary": "Summarising customers",
    "fit": "Fitting models",
    "score": "Scoring customers",
    "validate": "Holdout validation",
    "cluster": "Clustering (k-means, silhouette)",
    "kpis": "Report: KPIs",
    "rfm": "Report: RFM segments",
    "cohorts": "Report: cohorts",
    "clv": "Report: lifetime value",
    "validation": "Report: holdout validation",
    "clusters": "Report: clusters",
}


@contextmanager
def steps(names: list[str], *, quiet: bool = False) -> Iterator[Callable[[], None]]:
    """A rich progress bar over named steps, on stderr (never mixed with --json output)."""
    if quiet or not err.is_terminal:
        yield lambda: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(_STEP_LABELS.get(names[0], names[0]), total=len(names))
        position = [0]

        def advance() -> None:
            position[0] += 1
            progress.advance(task)
            if position[0] < len(names):
                name = names[position[0]]
                progress.update(task, description=_STEP_LABELS.get(name, name))

        yield advance


def emit_json(data: object) -> None:
    sys.stdout.write(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    )


def _load_note(tx: "Transactions") -> None:
    rep = tx.report
    excluded = ", ".join(f"{k}: {v:,}" for k, v in rep.excluded.items()) or "none"
    err.print(
        f"[dim]{rep.source}: {rep.rows_read:,} rows read, {rep.rows_used:,} used; "
        f"excluded: {excluded}[/]",
        highlight=False,
    )
    for note in rep.notes:
        err.print(f"[dim]  · {note}[/]", highlight=False)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LangOpt = Annotated[str, typer.Option("--lang", help="Language of names: en or zh.")]
ExportOpt = Annotated[
    Path | None, typer.Option(help="Also write per-customer results to .csv or .xlsx.")
]


def _numbers(spec: str | None, option: str) -> tuple[float, ...] | None:
    if spec is None:
        return None
    try:
        return tuple(float(v) for v in spec.split(",") if v.strip())
    except ValueError:
        raise InputError(
            f"{option} takes numbers separated by commas, e.g. 30,90,180,365"
        ) from None


def _check_lang(lang: str) -> None:
    if lang not in ("en", "zh"):
        raise InputError("--lang must be en or zh")


# --------------------------------------------------------------------------- commands


@app.command("rfm")
@with_source
def rfm_command(
    tx: "Transactions",
    as_of: Annotated[str | None, typer.Option(help="Score as of this date (YYYY-MM-DD).")] = None,
    bins: Annotated[int, typer.Option(help="Number of score bins (quantiles), 2-10.")] = 5,
    recency_thresholds: Annotated[
        str | None,
        typer.Option(
            help="Days instead of quantiles, bins-1 ascending values, e.g. 30,90,180,365."
        ),
    ] = None,
    frequency_thresholds: Annotated[
        str | None, typer.Option(help="Orders instead of quantiles, e.g. 1,2,4,8.")
    ] = None,
    monetary_thresholds: Annotated[
        str | None, typer.Option(help="Money instead of quantiles, e.g. 100,300,800,2000.")
    ] = None,
    transitions_from: Annotated[
        str | None, typer.Option(help="Also show segment movement since this date.")
    ] = None,
    export: ExportOpt = None,
    lang: LangOpt = "en",
    as_json: JsonOpt = False,
) -> None:
    """RFM scores and named segments (sizes, value shares, movement)."""
    from loyalist.analytics import api
    from loyalist.analytics.export import export_frame
    from loyalist.analytics.rfm import RFMConfig

    _check_lang(lang)
    cfg = RFMConfig(
        bins=bins,
        recency_thresholds=_numbers(recency_thresholds, "--recency-thresholds"),
        frequency_thresholds=_numbers(frequency_thresholds, "--frequency-thresholds"),
        monetary_thresholds=_numbers(monetary_thresholds, "--monetary-thresholds"),
    )
    data = api.analyze_rfm(tx, as_of=as_of, config=cfg, transitions_from=transitions_from)
    if export is not None:
        export_frame(api.rfm_table(tx, as_of, cfg), export)
    if as_json:
        emit_json(data)
        return
    _load_note(tx)
    table = Table(title=f"RFM segments as of {data['as_of']} ({data['customers']:,} customers)")
    for col in ("Segment", "Customers", "% cust.", "% revenue", "Recency d", "Orders", "Spend"):
        table.add_column(col, justify="left" if col == "Segment" else "right")
    for r in data["segments"]:  # type: ignore[attr-defined]
        table.add_row(
            segment_label(r["segment"], lang),
            f"{r['customers']:,}",
            f"{r['customer_share'] * 100:.1f}%",
            f"{r['revenue_share'] * 100:.1f}%",
            f"{r['mean_recency_days']:.0f}",
            f"{r['mean_frequency']:.1f}",
            f"{r['mean_monetary']:,.2f}",
        )
    out.print(table)
    if "transitions" in data:
        tr = data["transitions"]
        matrix = tr["matrix"]  # type: ignore[index]
        t2 = Table(title=f"Segment movement {tr['from']} → {tr['to']}")  # type: ignore[index]
        cols = [c for c in matrix[0] if c != "from"] if matrix else []
        t2.add_column("from \\ to")
        for c in cols:
            t2.add_column(segment_label(c, lang), justify="right")
        for row in matrix:
            t2.add_row(segment_label(row["from"], lang), *[f"{row[c]:,}" for c in cols])
        out.print(t2)
    if export is not None:
        err.print(f"wrote {export}")


@app.command("cohorts")
@with_source
def cohorts_command(
    tx: "Transactions",
    granularity: Annotated[str, typer.Option(help="month or week.")] = "month",
    periods: Annotated[int, typer.Option(help="Periods after acquisition to show.")] = 12,
    export: Annotated[
        Path | None, typer.Option(help="Also write the cohort table to .csv or .xlsx.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Acquisition cohorts: retention and revenue per cohort over time."""
    import polars as pl

    from loyalist.analytics import api
    from loyalist.analytics.export import export_frame

    if granularity not in ("month", "week"):
        raise InputError("--granularity must be month or week")
    gran: Literal["month", "week"] = "month" if granularity == "month" else "week"
    data = api.analyze_cohorts(tx, granularity=gran, periods=periods)
    frame = pl.DataFrame(data["cohorts"])  # type: ignore[arg-type]
    if export is not None:
        export_frame(frame, export, sheet="cohorts")
    if as_json:
        emit_json(data)
        return
    _load_note(tx)

    def pct(v: float) -> str:
        return f"{v * 100:.0f}%"

    def money(v: float) -> str:
        return f"{v:,.0f}"

    shown: list[tuple[str, str, Callable[[float], str]]] = [
        ("retention", "Retention", pct),
        ("revenue_per_customer", "Revenue per cohort customer", money),
    ]
    for value, title, fmt in shown:
        wide = frame.pivot(on="period_index", index=["cohort", "cohort_size"], values=value)
        table = Table(title=f"{title} by {granularity}s since first purchase")
        table.add_column("Cohort")
        table.add_column("Size", justify="right")
        pcols = [c for c in wide.columns if c not in ("cohort", "cohort_size")]
        pcols.sort(key=int)
        for c in pcols:
            table.add_column(c, justify="right")
        for r in wide.sort("cohort").to_dicts():
            table.add_row(
                str(r["cohort"]),
                f"{r['cohort_size']:,}",
                *[("" if r[c] is None else fmt(r[c])) for c in pcols],
            )
        out.print(table)
    if export is not None:
        err.print(f"wrote {export}")


@app.command("kpis")
@with_source
def kpis_command(
    tx: "Transactions",
    start: Annotated[str | None, typer.Option(help="First day (default: end - 29 days).")] = None,
    end: Annotated[str | None, typer.Option(help="Last day (default: last data day).")] = None,
    segment: Annotated[
        str | None, typer.Option(help="Restrict to an RFM segment (as of --end).")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(help="Only orders with store=CODE, channel=NAME or tier=CODE (repeatable)."),
    ] = None,
    lang: LangOpt = "en",
    as_json: JsonOpt = False,
) -> None:
    """Programme KPIs for a period (and members vs non-members when known)."""
    from loyalist.analytics import api
    from loyalist.analytics.kpis import KPI_NAMES

    _check_lang(lang)
    filters: dict[str, str] = {}
    for item in where or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"bad --where {item!r}: use column=value, e.g. store=sh1")
        filters[key.strip()] = value.strip()
    data = api.analyze_kpis(tx, start=start, end=end, segment=segment, where=filters or None)
    if as_json:
        emit_json(data)
        return
    _load_note(tx)
    title = f"KPIs {data['start']} – {data['end']}"
    if segment:
        title += f" · {segment_label(segment, lang)}"
    for key, value in filters.items():
        title += f" · {key} = {value}"
    table = Table(title=title)
    table.add_column("KPI")
    table.add_column("All", justify="right")
    has_members = "members" in data
    if has_members:
        table.add_column("Members", justify="right")
        table.add_column("Non-members", justify="right")
    for k in KPI_NAMES:
        row = [kpi_label(k, lang), _kpi(k, data["overall"])]
        if has_members:
            row += [_kpi(k, data["members"]), _kpi(k, data["non_members"])]
        table.add_row(*row)
    out.print(table)


def _kpi(name: str, values: object) -> str:
    v = values.get(name) if isinstance(values, dict) else None
    return "–" if v is None else fmt_kpi(name, float(v))


@app.command("clv")
@with_source
def clv_command(
    tx: "Transactions",
    observation_end: Annotated[
        str | None, typer.Option(help="End of observation (default: last data day).")
    ] = None,
    model: Annotated[str, typer.Option(help="bgnbd or paretonbd.")] = "bgnbd",
    unit: Annotated[str, typer.Option(help="Model time unit: D, W or M.")] = "W",
    horizon_days: Annotated[float, typer.Option(help="CLV horizon in days.")] = 365.0,
    discount_rate: Annotated[float, typer.Option(help="Annual discount rate.")] = 0.10,
    margin: Annotated[float, typer.Option(help="Gross margin applied to spend (0-1].")] = 1.0,
    calibration_end: Annotated[
        str | None, typer.Option(help="Also validate: calibrate up to this date.")
    ] = None,
    top: Annotated[int, typer.Option(help="Customers to list.")] = 10,
    export: ExportOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit BG/NBD (or Pareto/NBD) + Gamma-Gamma; P(alive), expected purchases, CLV."""
    from loyalist.analytics import api
    from loyalist.analytics.export import export_frame

    if model not in ("bgnbd", "paretonbd"):
        raise InputError("--model must be bgnbd or paretonbd")
    names = ["summary", "fit"] + (["validate"] if calibration_end else [])
    with steps(names, quiet=as_json) as advance:
        data, customers = api.analyze_clv(
            tx,
            observation_end=observation_end,
            unit=unit,
            model="paretonbd" if model == "paretonbd" else "bgnbd",
            horizon_days=horizon_days,
            discount_rate=discount_rate,
            margin=margin,
            top=top,
            calibration_end=calibration_end,
            collect_customers=export is not None,
        )
        for _ in names:
            advance()
    if export is not None:
        export_frame(customers, export)
    if as_json:
        emit_json(data)
        return
    _load_note(tx)
    for key in ("purchase_model", "spend_model"):
        fit = data[key]
        name = MODEL_NAMES.get(str(fit["model"]), str(fit["model"]))  # type: ignore[index]
        table = Table(title=f"{name}: log-likelihood {fit['log_likelihood']:,.3f}")  # type: ignore[index]
        table.add_column("Parameter")
        table.add_column("Estimate", justify="right")
        table.add_column("Std. error", justify="right")
        for name, value in fit["params"].items():  # type: ignore[index]
            se = fit["standard_errors"].get(name)  # type: ignore[index]
            table.add_row(name, f"{value:.4f}", "–" if se is None else f"{se:.4f}")
        out.print(table)
        conv = fit["convergence"]  # type: ignore[index]
        state = "[green]converged[/]" if conv["converged"] else "[red]NOT converged[/]"
        out.print(
            f"  {state}: {conv['reason']} ({conv['iterations']} iterations, "
            f"{fit['n_unique_rows']:,} distinct rows, {fit['seconds'] * 1000:.0f} ms)"  # type: ignore[index]
        )
    out.print(
        f"Customers: {data['customers']:,} · total CLV {data['total_clv']:,.2f} · mean CLV "
        f"{data['mean_clv']:,.2f} · mean P(alive) {data['mean_probability_alive']:.3f}"
    )
    table = Table(title=f"Top {top} customers by CLV")
    for col in ("Customer", "x", "P(alive)", "E(purchases)", "E(spend)", "CLV"):
        table.add_column(col, justify="left" if col == "Customer" else "right")
    for r in data["top_customers"]:  # type: ignore[attr-defined]
        table.add_row(
            str(r["customer_id"]),
            str(r["frequency"]),
            f"{r['probability_alive']:.3f}",
            f"{r['expected_purchases']:.2f}",
            f"{r['expected_spend']:,.2f}",
            f"{r['clv']:,.2f}",
        )
    out.print(table)
    if "validation" in data:
        val = data["validation"]
        t2 = Table(title=f"Holdout validation (calibration to {val['calibration_end']})")  # type: ignore[index]
        for col in ("Repeat purchases in calibration", "Customers", "Actual", "Predicted"):
            t2.add_column(col, justify="right")
        for b in val["buckets"]:  # type: ignore[index]
            t2.add_row(
                str(b["frequency_bucket"]),
                f"{b['customers']:,}",
                f"{b['actual']:.3f}",
                f"{b['predicted']:.3f}",
            )
        t2.add_row("Total", "", f"{val['actual_total']:,.0f}", f"{val['predicted_total']:,.1f}")  # type: ignore[index]
        out.print(t2)
    if export is not None:
        err.print(f"wrote {export}")


@app.command("segments")
@with_source
def segments_command(
    tx: "Transactions",
    as_of: Annotated[str | None, typer.Option(help="As of this date.")] = None,
    k_min: Annotated[int, typer.Option(help="Smallest k tried.")] = 2,
    k_max: Annotated[int, typer.Option(help="Largest k tried.")] = 8,
    with_clv: Annotated[bool, typer.Option("--with-clv", help="Add CLV as a feature.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed of k-means.")] = 0,
    export: Annotated[
        Path | None, typer.Option(help="Also write customers with their cluster to .csv/.xlsx.")
    ] = None,
    lang: LangOpt = "en",
    as_json: JsonOpt = False,
) -> None:
    """K-means segments on standardised RFM (and CLV) features; k by silhouette."""
    from loyalist.analytics import api
    from loyalist.analytics.export import export_frame

    _check_lang(lang)
    if not 2 <= k_min <= k_max:
        raise InputError("need 2 <= --k-min <= --k-max")
    with steps(["cluster"], quiet=as_json) as advance:
        data, assigned = api.analyze_segments(
            tx,
            as_of=as_of,
            k_range=range(k_min, k_max + 1),
            with_clv=with_clv,
            lang=lang,
            seed=seed,
        )
        advance()
    if export is not None:
        export_frame(assigned, export)
    if as_json:
        emit_json(data)
        return
    _load_note(tx)
    sil = data["silhouette"]
    out.print(
        f"Chosen k = {data['k']} (silhouette: "
        + ", ".join(f"k={k}: {v:.3f}" for k, v in sil.items())  # type: ignore[attr-defined]
        + ")",
        highlight=False,
    )
    for line in data["descriptions"]:  # type: ignore[attr-defined]
        out.print(f" • {line}", highlight=False)
    if export is not None:
        err.print(f"wrote {export}")


@app.command("report")
@with_source
def report_command(
    tx: "Transactions",
    out_path: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(
        "report.html"
    ),
    lang: Annotated[str, typer.Option(help="en or zh.")] = "en",
    as_of: Annotated[str | None, typer.Option(help="As of this date.")] = None,
    kpi_days: Annotated[int, typer.Option(help="Length of the KPI period in days.")] = 90,
    calibration_end: Annotated[
        str | None, typer.Option(help="Holdout split (default: middle of the history).")
    ] = None,
    currency: Annotated[str, typer.Option(help="Currency symbol, e.g. ¥ or $.")] = "",
    model: Annotated[str, typer.Option(help="bgnbd or paretonbd.")] = "bgnbd",
    title: Annotated[str | None, typer.Option(help="Report title.")] = None,
    clusters: Annotated[bool, typer.Option(help="Include k-means segments.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write one self-contained HTML report (charts inline, no network) in en or zh."""
    from loyalist.analytics.report import STEPS, ReportOptions, write_report

    _check_lang(lang)
    if model not in ("bgnbd", "paretonbd"):
        raise InputError("--model must be bgnbd or paretonbd")
    opts = ReportOptions(
        lang=lang,
        as_of=as_of,
        kpi_days=kpi_days,
        calibration_end=calibration_end,
        currency=currency,
        model="paretonbd" if model == "paretonbd" else "bgnbd",
        clusters=clusters,
        title=title,
    )
    names = [s for s in STEPS if clusters or s != "clusters"]
    with steps(names, quiet=as_json) as advance:
        path = write_report(tx, out_path, opts, progress=lambda _s: advance())
    if as_json:
        emit_json({"load": tx.report.to_dict(), "report": str(path)})
        return
    _load_note(tx)
    out.print(f"wrote {path}")


def main() -> None:
    app()


# --------------------------------------------------------------------------- export parquet

export_app = typer.Typer(
    name="export",
    help="Export data for other engines (Spark, notebooks).",
    no_args_is_help=True,
    add_completion=False,
)


@export_app.command("parquet")
@with_source
def export_parquet_command(
    tx: "Transactions",
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    as_json: JsonOpt = False,
) -> None:
    """Write the transactions (the platform's orders by default) as canonical Parquet:
    customer_id, occurred_at (local time of the programme's zone), amount, the optional
    columns, and ``seq`` (row order), for ``loyalist analyze ... --engine spark``."""
    import polars as pl

    output.parent.mkdir(parents=True, exist_ok=True)
    frame = tx.frame.with_row_index("seq").with_columns(pl.col("seq").cast(pl.Int64))
    frame.write_parquet(output)
    data = {"output": str(output), "rows": frame.height, "columns": frame.columns}
    if as_json:
        emit_json(data)
        return
    _load_note(tx)
    out.print(f"wrote {frame.height:,} rows to {output}")
