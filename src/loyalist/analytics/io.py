"""Reading transactions: CSV, Parquet, whitespace-separated text, a database, or a frame.

Whatever the source, the result is a :class:`Transactions`: a Polars frame of the orders of
identified customers with the canonical columns below, the orders without a customer
(``anonymous``, kept apart), and a :class:`LoadReport` that counts every row read, used and
excluded (with the reason).  Bad input raises :class:`InputError` naming the data rows
(1-based, header not counted) and, when there is an order id column, the order ids at fault.

Canonical columns
    customer_id  Utf8      who bought
    occurred_at  Datetime  when (wall-clock time in the analysis time zone, naive)
    amount       Float64   money paid net of refunds, in major units (yuan, dollars)
    order_id     Utf8      optional; must be unique when given
    store, channel, tier   Utf8 optional
    is_member    Boolean   optional

The platform's own database is read by :func:`read_database` with a plain SQL query over
``orders`` (joined to ``org_unit`` for the store code and ``member`` for the tier) through
SQLAlchemy into Polars; see ``docs/analytics.md`` ("Reading the platform's database").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from loyalist.analytics.errors import InputError, MissingColumnError
from loyalist.analytics.i18n import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.sql.expression import Selectable, TextClause

__all__ = [
    "DEFAULT_TIMEZONE",
    "PLATFORM_COLUMNS",
    "PLATFORM_QUERY",
    "ColumnMap",
    "LoadReport",
    "Transactions",
    "normalise",
    "read_cdnow",
    "read_database",
    "read_transactions",
]

#: Minor units (fen) to major units (yuan) for the platform's money columns.
PLATFORM_AMOUNT_SCALE = 0.01

WHITESPACE = "whitespace"


@dataclass(frozen=True)
class ColumnMap:
    """Names of the source columns; ``None`` for optional columns that are absent.

    ``refund`` names a column of amounts refunded on the order (returns); it is subtracted
    from ``amount``.  ``member`` names a yes/no membership flag.
    """

    customer: str = "customer_id"
    timestamp: str = "occurred_at"
    amount: str = "amount"
    order_id: str | None = None
    store: str | None = None
    channel: str | None = None
    member: str | None = None
    tier: str | None = None
    refund: str | None = None

    def optional(self) -> dict[str, str]:
        pairs = {
            "order_id": self.order_id,
            "store": self.store,
            "channel": self.channel,
            "is_member": self.member,
            "tier": self.tier,
            "refund": self.refund,
        }
        return {k: v for k, v in pairs.items() if v}


#: The columns of :data:`PLATFORM_QUERY`: money in fen, net of refunds, member flag derived
#: from ``member_id`` (orders without one are anonymous non-member orders).
PLATFORM_COLUMNS = ColumnMap(
    customer="member_id",
    timestamp="occurred_at",
    amount="amount_paid_minor",
    refund="refunded_minor",
    order_id="external_id",
    store="store",
    channel="channel",
    member="is_member",
    tier="tier",
)

#: How the platform's orders are read (portable SQL: SQLite and PostgreSQL).  Timestamps are
#: stored in UTC; ``tier`` is the member's current tier, not the tier at the time of the order.
PLATFORM_QUERY = """
SELECT o.external_id AS external_id,
       o.member_id AS member_id,
       o.occurred_at AS occurred_at,
       o.amount_paid_minor AS amount_paid_minor,
       o.refunded_minor AS refunded_minor,
       s.code AS store,
       o.channel AS channel,
       m.tier_code AS tier,
       CASE WHEN o.member_id IS NULL THEN 0 ELSE 1 END AS is_member
FROM orders o
LEFT JOIN org_unit s ON s.id = o.store_id
LEFT JOIN member m ON m.id = o.member_id
ORDER BY o.id
"""


@dataclass
class LoadReport:
    """How many rows were read, used and excluded, and why.

    ``rows_read == rows_used + sum(excluded.values())`` always holds.  ``anonymous_orders``
    of the rows used have no customer id: they count in KPIs (as non-member orders) but not
    in customer-level analyses (RFM, cohorts, CLV, clusters).  ``returns_netted`` counts
    the used orders whose amount was reduced by a refund (partly returned).
    """

    source: str
    rows_read: int = 0
    rows_used: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    anonymous_orders: int = 0
    returns_netted: int = 0
    notes: list[str] = field(default_factory=list)

    def exclude(self, reason: str, count: int) -> None:
        if count:
            self.excluded[reason] = self.excluded.get(reason, 0) + count

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "excluded": dict(self.excluded),
            "anonymous_orders": self.anonymous_orders,
            "returns_netted": self.returns_netted,
            "notes": list(self.notes),
        }


@dataclass
class Transactions:
    """Validated transactions in canonical form, with the load report.

    ``frame`` holds the orders of identified customers; ``anonymous`` the orders without a
    customer id (the same columns but ``customer_id``), used by the KPIs only.
    """

    frame: pl.DataFrame
    report: LoadReport
    anonymous: pl.DataFrame | None = None

    @property
    def has_member_flag(self) -> bool:
        return "is_member" in self.frame.columns

    def __len__(self) -> int:
        return self.frame.height


def _rows(mask: pl.Series) -> list[int]:
    """1-based row numbers where ``mask`` is true."""
    return [int(i) + 1 for i in mask.arg_true().to_list()]


def _ids(mask: pl.Series, order_ids: pl.Series | None) -> list[str]:
    if order_ids is None:
        return []
    return [str(v) for v in order_ids.filter(mask).head(20).to_list()]


#: Formats tried, in order, for text timestamps without ``date_format`` (a "T" between date
#: and time and a trailing "Z" are accepted; ``%.f`` makes fractions of a second optional).
AWARE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z")
NAIVE_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y%m%d",
)


def _to_local(col: pl.Series, timezone: str, naive_timezone: str | None) -> pl.Series:
    """Datetimes to naive wall-clock time in ``timezone``."""
    dtype = col.dtype
    assert isinstance(dtype, pl.Datetime)
    if dtype.time_zone is None:
        if naive_timezone is None or naive_timezone == timezone:
            return col.cast(pl.Datetime("us"))
        col = col.dt.replace_time_zone(naive_timezone, ambiguous="earliest", non_existent="null")
    return col.dt.convert_time_zone(timezone).dt.replace_time_zone(None).cast(pl.Datetime("us"))


def _parse_timestamp(
    col: pl.Series, date_format: str | None, timezone: str, naive_timezone: str | None
) -> pl.Series:
    dtype = col.dtype
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Datetime):
        return _to_local(col, timezone, naive_timezone)
    if dtype.is_integer():
        col = col.cast(pl.Utf8)
        date_format = date_format or "%Y%m%d"
    elif dtype != pl.Utf8:
        col = col.cast(pl.Utf8)
    text = col.str.strip_chars()
    if date_format:
        parsed = text.str.to_datetime(date_format, strict=False, time_unit="us")
        return _to_local(parsed, timezone, naive_timezone)
    text = text.str.replace(r"[Zz]$", "+00:00").str.replace(r"^(\d{4}-\d\d-\d\d)T", "$1 ")
    result = pl.Series(col.name, [None] * col.len(), dtype=pl.Datetime("us"))
    for fmt in AWARE_FORMATS + NAIVE_FORMATS:
        if result.null_count() == 0:
            break
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        result = result.fill_null(_to_local(parsed, timezone, naive_timezone))
    return result


def _money(raw: pl.Series) -> pl.Series:
    if raw.dtype == pl.Utf8:
        return raw.str.strip_chars().str.replace_all(",", "").cast(pl.Float64, strict=False)
    return raw.cast(pl.Float64, strict=False)


def _scaled(values: pl.Series, scale: float) -> pl.Series:
    """``values * scale``; by division when ``scale`` is 1/n (fen to yuan: 1999 -> 19.99
    exactly as written, not 19.990000000000002)."""
    if scale == 1.0:
        return values
    inverse = 1.0 / scale
    if abs(inverse - round(inverse)) < 1e-9:
        # (Polars divides by a scalar through its reciprocal, which is not exact)
        return pl.Series(values.name, values.to_numpy() / float(round(inverse)))
    return values * scale


def normalise(
    frame: pl.DataFrame,
    columns: ColumnMap | None = None,
    *,
    source: str = "frame",
    date_format: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    naive_timezone: str | None = None,
    amount_scale: float = 1.0,
    keep_zero: bool = False,
    anonymous: bool = False,
) -> Transactions:
    """Validate ``frame`` and bring it to canonical form.

    Raises :class:`InputError` for missing columns, empty customer ids (unless
    ``anonymous``), unparsable dates or amounts, negative amounts, refunds larger than the
    amount and duplicate order ids.  Rows whose net amount is zero are excluded and counted
    in the report ("fully returned" when a refund brought them to zero, "zero amount"
    otherwise) unless ``keep_zero``.

    ``timezone`` decides calendar days: aware timestamps are converted to it; naive ones
    are taken as wall-clock time in ``naive_timezone`` (default: already in ``timezone``).
    With ``anonymous=True`` rows without a customer id are kept apart as anonymous orders
    (non-members, one customer per order) instead of being an error.
    """
    cmap = columns or ColumnMap()
    report = LoadReport(source=source, rows_read=frame.height)
    wanted = {"customer_id": cmap.customer, "occurred_at": cmap.timestamp, "amount": cmap.amount}
    wanted.update(cmap.optional())
    missing = [src for src in dict.fromkeys(wanted.values()) if src not in frame.columns]
    if missing:
        raise MissingColumnError(
            f"missing column(s) {', '.join(repr(m) for m in missing)} in {source}; "
            f"available: {', '.join(frame.columns)}"
        )
    out: dict[str, pl.Series] = {}
    oid: pl.Series | None = None
    if cmap.order_id:
        oid = frame[cmap.order_id].cast(pl.Utf8).str.strip_chars()

    def fail(message: str, mask: pl.Series, column: str) -> InputError:
        return InputError(message, rows=_rows(mask), column=column, order_ids=_ids(mask, oid))

    cust = frame[cmap.customer].cast(pl.Utf8).str.strip_chars()
    no_customer = (cust.is_null() | (cust == "")).alias("no_customer")
    if no_customer.any() and not anonymous:
        raise fail(f"empty customer id in {cmap.customer!r}", no_customer, cmap.customer)
    out["customer_id"] = cust

    ts = _parse_timestamp(frame[cmap.timestamp], date_format, timezone, naive_timezone)
    bad = ts.is_null()
    if bad.any():
        raise fail(
            f"unparsable or empty date in {cmap.timestamp!r}"
            + (f" (expected format {date_format})" if date_format else ""),
            bad,
            cmap.timestamp,
        )
    out["occurred_at"] = ts

    amt = _money(frame[cmap.amount])
    bad = amt.is_null() | amt.is_nan() | amt.is_infinite()
    if bad.any():
        raise fail(f"unparsable or empty amount in {cmap.amount!r}", bad, cmap.amount)
    neg = amt < 0
    if neg.any():
        raise fail(
            f"negative amount in {cmap.amount!r}: refunds must be netted against their order "
            "(give the refund column) before analysis",
            neg,
            cmap.amount,
        )
    refunded = pl.Series("refund", [0.0] * frame.height, dtype=pl.Float64)
    if cmap.refund:
        refunded = _money(frame[cmap.refund]).fill_null(0.0)
        bad = refunded.is_nan() | refunded.is_infinite() | (refunded < 0)
        if bad.any():
            raise fail(f"unparsable or negative refund in {cmap.refund!r}", bad, cmap.refund)
        over = refunded > amt
        if over.any():
            raise fail(
                f"refund in {cmap.refund!r} larger than the amount in {cmap.amount!r}",
                over,
                cmap.refund,
            )
    net = amt - refunded
    out["amount"] = _scaled(net, amount_scale)

    if oid is not None:
        assert cmap.order_id is not None
        dup = oid.is_duplicated() & oid.is_not_null()
        if dup.any():
            raise fail(f"duplicate order id in {cmap.order_id!r}", dup, cmap.order_id)
        out["order_id"] = oid
    for canon in ("store", "channel", "tier"):
        src = getattr(cmap, canon)
        if src:
            out[canon] = frame[src].cast(pl.Utf8)
    if cmap.member:
        raw = frame[cmap.member]
        if raw.dtype == pl.Boolean:
            flag = raw
        else:
            text = raw.cast(pl.Utf8).str.strip_chars().str.to_lowercase()
            flag = text.is_in(["1", "true", "t", "yes", "y", "member", "是"])
        out["is_member"] = flag.fill_null(False)

    result = pl.DataFrame(out).with_columns(no_customer, (refunded > 0).alias("_refunded"))
    if not keep_zero:
        zero = result["amount"] == 0
        returned = zero & result["_refunded"]
        report.exclude("fully returned (net amount zero)", int(returned.sum()))
        report.exclude("zero amount", int((zero & ~result["_refunded"]).sum()))
        result = result.filter(~zero)
    report.returns_netted = int(result["_refunded"].sum())
    if report.returns_netted:
        report.notes.append(
            f"{report.returns_netted:,} partly returned orders counted net of their refunds, "
            "on the order's date"
        )
    anon: pl.DataFrame | None = None
    if anonymous:
        is_anon = result["no_customer"]
        anon_rows = result.filter(is_anon)
        if anon_rows.height:
            anon = anon_rows.drop("customer_id", "no_customer", "_refunded")
            if "is_member" in anon.columns:
                anon = anon.with_columns(pl.lit(False).alias("is_member"))
            report.anonymous_orders = anon.height
            report.notes.append(
                f"{anon.height:,} anonymous orders (no customer id): non-member orders, counted "
                "in the order and revenue KPIs only; not in RFM, cohorts, CLV or clusters"
            )
        result = result.filter(~is_anon)
    result = result.drop("no_customer", "_refunded")
    report.rows_used = result.height + (anon.height if anon is not None else 0)
    return Transactions(frame=result, report=report, anonymous=anon)


def _read_whitespace(path: Path, *, has_header: bool) -> pl.DataFrame:
    """Columns separated by runs of spaces or tabs (e.g. the CDNOW files)."""
    lines = pl.read_csv(
        path,
        has_header=False,
        new_columns=["line"],
        separator="\x1f",
        quote_char=None,
        infer_schema=False,
    )["line"]
    parts = (
        lines.fill_null("")
        .str.replace_all("\t", " ")
        .str.strip_chars()
        .str.split(" ")
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    filled = (parts.list.len() > 0).arg_true().to_list()
    parts = parts.head(filled[-1] + 1 if filled else 0)  # without trailing blank lines
    if has_header:
        if parts.len() == 0:
            raise InputError(f"{path} is empty")
        names = [str(n) for n in parts[0].to_list()]
        parts = parts.slice(1)
    else:
        width = int(parts.list.len().max() or 0)  # type: ignore[arg-type]
        names = [f"column_{i}" for i in range(1, width + 1)]
    widths = parts.list.len()
    bad = widths != len(names)
    if bad.any():
        raise InputError(
            f"{path}: rows with {', '.join(str(w) for w in sorted(set(widths.filter(bad))))} "
            f"fields where the {'header names' if has_header else 'widest row has'} "
            f"{len(names)}",
            rows=_rows(bad),
        )
    if len(set(names)) != len(names):
        raise InputError(f"{path}: repeated column names in the header: {', '.join(names)}")
    return pl.DataFrame({name: parts.list.get(i) for i, name in enumerate(names)})


def read_transactions(
    path: str | Path,
    columns: ColumnMap | None = None,
    *,
    date_format: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    naive_timezone: str | None = None,
    amount_scale: float = 1.0,
    separator: str = ",",
    has_header: bool = True,
    keep_zero: bool = False,
    anonymous: bool = False,
) -> Transactions:
    """Read a CSV, TSV, whitespace-separated text or Parquet file of transactions.

    Parquet is chosen by the ``.parquet``/``.pq`` suffix; otherwise the file is text split by
    ``separator`` (``"whitespace"`` for runs of spaces/tabs; ``.tsv`` files use tabs).
    Without a header (``has_header=False``) the columns are ``column_1``, ``column_2``, ...
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pl.read_parquet(p)
    elif separator in (WHITESPACE, "ws"):
        frame = _read_whitespace(p, has_header=has_header)
    else:
        frame = pl.read_csv(
            p,
            separator="\t" if suffix == ".tsv" and separator == "," else separator,
            has_header=has_header,
            infer_schema=False,  # every column as text: parsing errors are ours to report
        )
    return normalise(
        frame,
        columns,
        source=str(p),
        date_format=date_format,
        timezone=timezone,
        naive_timezone=naive_timezone,
        amount_scale=amount_scale,
        keep_zero=keep_zero,
        anonymous=anonymous,
    )


def read_database(
    source: str | Engine | Connection,
    *,
    query: str | None = None,
    table: str | None = None,
    columns: ColumnMap | None = None,
    timezone: str | None = None,
    naive_timezone: str | None = None,
    amount_scale: float | None = None,
    keep_zero: bool = False,
    anonymous: bool | None = None,
) -> Transactions:
    """Read transactions from a database through SQLAlchemy into a Polars frame.

    ``source`` is a SQLAlchemy URL (``sqlite:///var/loyalist.db``,
    ``postgresql+psycopg://user@host/db``), an ``Engine`` or an open ``Connection``.

    * Neither ``query`` nor ``table``: the platform's orders (:data:`PLATFORM_QUERY`), with
      amounts paid net of refunds converted from fen (x 0.01), UTC timestamps converted to
      ``timezone`` (default: the active programme's zone), store codes, the member's tier,
      and orders without a member kept as anonymous non-member orders.
    * ``table`` (``name`` or ``schema.name``): ``SELECT <the mapped columns> FROM table``;
      ``query``: any SELECT.  Columns are named by ``columns`` (default :class:`ColumnMap`).
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import Connection, Engine

    platform = query is None and table is None
    naive: str | None
    if platform:
        cmap = columns or PLATFORM_COLUMNS
        scale = PLATFORM_AMOUNT_SCALE if amount_scale is None else amount_scale
        naive = naive_timezone or "UTC"
        anon = True if anonymous is None else anonymous
    else:
        cmap = columns or ColumnMap()
        scale = 1.0 if amount_scale is None else amount_scale
        naive = naive_timezone
        anon = bool(anonymous)

    zone = timezone

    def fetch(conn: Connection) -> pl.DataFrame:
        nonlocal zone
        if zone is None:
            zone = (_programme_timezone(conn) if platform else None) or DEFAULT_TIMEZONE
        return pl.read_database(
            _statement(conn, cmap, query, table, platform), conn, infer_schema_length=None
        )

    try:
        if isinstance(source, Connection):
            label = _redact(source.engine.url)
            frame = fetch(source)
        else:
            engine = source if isinstance(source, Engine) else create_engine(source)
            label = _redact(engine.url)
            try:
                with engine.connect() as conn:
                    frame = fetch(conn)
            finally:
                if not isinstance(source, Engine):
                    engine.dispose()
    except InputError:
        raise
    except Exception as exc:  # the drivers' own error types vary by backend
        raise InputError(f"cannot read transactions from the database: {exc}") from exc
    assert zone is not None
    tx = normalise(
        frame,
        cmap,
        source=label,
        timezone=zone,
        naive_timezone=naive,
        amount_scale=scale,
        keep_zero=keep_zero,
        anonymous=anon,
    )
    if platform:
        tx.report.notes.insert(
            0,
            "platform orders: amount = amount paid in money (points excluded) minus refunds, "
            f"in major units; days in {zone}; tier = the member's current tier",
        )
    return tx


def _programme_timezone(conn: Connection) -> str | None:
    """The time zone of the platform's active programme (its latest version), if any."""
    import json

    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("programme_version"):
        return None
    row = conn.execute(
        text("SELECT document FROM programme_version ORDER BY version DESC LIMIT 1")
    ).first()
    if row is None:
        return None
    doc = row[0]
    if isinstance(doc, str):
        doc = json.loads(doc)
    zone = doc.get("timezone") if isinstance(doc, dict) else None
    return str(zone) if zone else None


def _statement(
    conn: Connection, cmap: ColumnMap, query: str | None, table: str | None, platform: bool
) -> TextClause | Selectable:
    """The SELECT to run: the platform's query, the caller's, or the mapped columns of a
    table (checked against the table first, so a wrong name is reported as such)."""
    from sqlalchemy import column, inspect, select, text
    from sqlalchemy import table as table_clause

    if platform:
        return text(PLATFORM_QUERY)
    if query is not None:
        return text(query)
    assert table is not None
    schema, _, name = table.rpartition(".")
    insp = inspect(conn)
    if not insp.has_table(name, schema=schema or None):
        raise InputError(f"no table {table!r} in the database")
    available = [str(c["name"]) for c in insp.get_columns(name, schema=schema or None)]
    wanted = list(dict.fromkeys([cmap.customer, cmap.timestamp, cmap.amount]))
    wanted += [n for n in dict.fromkeys(cmap.optional().values()) if n not in wanted]
    missing = [n for n in wanted if n not in available]
    if missing:
        raise MissingColumnError(
            f"missing column(s) {', '.join(repr(m) for m in missing)} in table {table!r}; "
            f"available: {', '.join(available)}"
        )
    return select(*[column(n) for n in wanted]).select_from(
        table_clause(name, schema=schema or None)
    )


def _redact(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def read_cdnow(path: str | Path, *, keep_zero: bool = True) -> Transactions:
    """Read a CDNOW file (``CDNOW_master.txt`` or ``CDNOW_sample.txt``).

    Master lines are ``customer date cds dollars`` (after a header); sample lines carry an
    extra leading master id: ``master_id sample_id date cds dollars``.  Dates are YYYYMMDD.
    The same files can be read with :func:`read_transactions` and
    ``separator="whitespace"`` by naming the columns.  ``$0`` lines (promotional CDs) are
    purchases in the published analyses and kept by default; with ``keep_zero=False`` they
    are excluded and counted like any zero-amount row.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    frame = _read_whitespace(p, has_header=False)
    first = frame.row(0) if frame.height else ()
    header = bool(first) and any(ch.isalpha() for ch in str(first[0]))
    if header:
        frame = frame.slice(1)
    if frame.width not in (4, 5):
        raise InputError(f"{p} is not a CDNOW file (unexpected number of fields)")
    offset = frame.width - 4
    cols = frame.columns
    frame = frame.select(
        pl.col(cols[offset]).alias("customer_id"),
        pl.col(cols[offset + 1]).alias("date"),
        pl.col(cols[offset + 2]).alias("cds"),
        pl.col(cols[offset + 3]).alias("amount"),
    )
    return normalise(
        frame,
        ColumnMap(customer="customer_id", timestamp="date", amount="amount"),
        source=str(p),
        date_format="%Y%m%d",
        keep_zero=keep_zero,
    )
