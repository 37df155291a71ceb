"""Reading transactions: CSV, Parquet, a database (through SQLAlchemy), or a frame.

Whatever the source, the result is a :class:`Transactions`: a Polars frame with the
canonical columns below plus a :class:`LoadReport` that counts every row read, used and
excluded (with the reason).  Bad input raises :class:`InputError` naming the data rows
(1-based, header not counted) at fault.

Canonical columns
    customer_id  Utf8      who bought
    occurred_at  Datetime  when (wall-clock time in the analysis time zone, naive)
    amount       Float64   money paid, in major units (yuan, dollars)
    order_id     Utf8      optional; must be unique when given
    store, channel, tier   Utf8 optional
    is_member    Boolean   optional
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from loyalist.analytics.errors import InputError, MissingColumnError

DEFAULT_TIMEZONE = "Asia/Shanghai"

#: Default column mapping for the platform's ``orders`` table (money in fen).
PLATFORM_TABLE = "orders"
PLATFORM_AMOUNT_SCALE = 0.01


@dataclass(frozen=True)
class ColumnMap:
    """Names of the source columns; ``None`` for optional columns that are absent."""

    customer: str = "customer_id"
    timestamp: str = "occurred_at"
    amount: str = "amount"
    order_id: str | None = None
    store: str | None = None
    channel: str | None = None
    member: str | None = None
    tier: str | None = None

    def optional(self) -> dict[str, str]:
        pairs = {
            "order_id": self.order_id,
            "store": self.store,
            "channel": self.channel,
            "is_member": self.member,
            "tier": self.tier,
        }
        return {k: v for k, v in pairs.items() if v}


#: The platform's ``orders`` table: ``member_id, occurred_at, amount_paid_minor, external_id,
#: store_id, channel`` (amounts in minor units, i.e. fen).
PLATFORM_COLUMNS = ColumnMap(
    customer="member_id",
    timestamp="occurred_at",
    amount="amount_paid_minor",
    order_id="external_id",
    store="store_id",
    channel="channel",
)


@dataclass
class LoadReport:
    """How many rows were read, used and excluded, and why."""

    source: str
    rows_read: int = 0
    rows_used: int = 0
    excluded: dict[str, int] = field(default_factory=dict)

    def exclude(self, reason: str, count: int) -> None:
        if count:
            self.excluded[reason] = self.excluded.get(reason, 0) + count

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "excluded": dict(self.excluded),
        }


@dataclass
class Transactions:
    """Validated transactions in canonical form, with the load report."""

    frame: pl.DataFrame
    report: LoadReport

    @property
    def has_member_flag(self) -> bool:
        return "is_member" in self.frame.columns

    def __len__(self) -> int:
        return self.frame.height


def _rows(mask: pl.Series) -> list[int]:
    """1-based row numbers where ``mask`` is true."""
    return [int(i) + 1 for i in mask.arg_true().to_list()]


def _parse_timestamp(col: pl.Series, date_format: str | None, timezone: str) -> pl.Series:
    dtype = col.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            return col.dt.convert_time_zone(timezone).dt.replace_time_zone(None)
        return col
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us"))
    if dtype.is_integer():
        col = col.cast(pl.Utf8)
        date_format = date_format or "%Y%m%d"
    if dtype != pl.Utf8 and not dtype.is_integer():
        col = col.cast(pl.Utf8)
    text = col.str.strip_chars()
    if date_format:
        parsed = text.str.to_datetime(date_format, strict=False, time_unit="us")
    else:
        parsed = text.str.to_datetime(strict=False, time_unit="us")
        if parsed.null_count() > col.null_count():
            # plain dates ("2024-03-01") are not always picked up by the datetime parser
            as_date = text.str.to_date(strict=False).cast(pl.Datetime("us"))
            parsed = parsed.fill_null(as_date)
    parsed_dtype = parsed.dtype
    if isinstance(parsed_dtype, pl.Datetime) and parsed_dtype.time_zone is not None:
        parsed = parsed.dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    return parsed.cast(pl.Datetime("us"))


def normalise(
    frame: pl.DataFrame,
    columns: ColumnMap | None = None,
    *,
    source: str = "frame",
    date_format: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    amount_scale: float = 1.0,
    keep_zero: bool = False,
) -> Transactions:
    """Validate ``frame`` and bring it to canonical form.

    Raises :class:`InputError` for missing columns, empty customer ids, unparsable dates or
    amounts, negative amounts and duplicate order ids.  Zero-amount rows are excluded and
    counted in the report (they are neither purchases nor refunds).
    """
    cmap = columns or ColumnMap()
    report = LoadReport(source=source, rows_read=frame.height)
    wanted = {"customer_id": cmap.customer, "occurred_at": cmap.timestamp, "amount": cmap.amount}
    wanted.update(cmap.optional())
    missing = [src for src in wanted.values() if src not in frame.columns]
    if missing:
        raise MissingColumnError(
            f"missing column(s) {', '.join(repr(m) for m in missing)} in {source}; "
            f"available: {', '.join(frame.columns)}"
        )
    out: dict[str, pl.Series] = {}

    cust = frame[cmap.customer].cast(pl.Utf8).str.strip_chars()
    bad = cust.is_null() | (cust == "")
    if bad.any():
        raise InputError(f"empty {cmap.customer!r}", rows=_rows(bad), column=cmap.customer)
    out["customer_id"] = cust

    ts_raw = frame[cmap.timestamp]
    ts = _parse_timestamp(ts_raw, date_format, timezone)
    bad = ts.is_null()
    if bad.any():
        raise InputError(
            f"unparsable or empty date in {cmap.timestamp!r}"
            + (f" (expected format {date_format})" if date_format else ""),
            rows=_rows(bad),
            column=cmap.timestamp,
        )
    out["occurred_at"] = ts

    amt_raw = frame[cmap.amount]
    if amt_raw.dtype == pl.Utf8:
        amt = amt_raw.str.strip_chars().str.replace_all(",", "").cast(pl.Float64, strict=False)
    else:
        amt = amt_raw.cast(pl.Float64, strict=False)
    bad = amt.is_null() | amt.is_nan() | amt.is_infinite()
    if bad.any():
        raise InputError(f"unparsable or empty amount in {cmap.amount!r}", rows=_rows(bad))
    neg = amt < 0
    if neg.any():
        raise InputError(
            f"negative amount in {cmap.amount!r}: refunds must be netted against their order "
            "before analysis",
            rows=_rows(neg),
            column=cmap.amount,
        )
    out["amount"] = amt * amount_scale

    if cmap.order_id:
        oid = frame[cmap.order_id].cast(pl.Utf8)
        dup = oid.is_duplicated() & oid.is_not_null()
        if dup.any():
            raise InputError(f"duplicate order id in {cmap.order_id!r}", rows=_rows(dup))
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

    result = pl.DataFrame(out)
    zero = result["amount"] == 0
    n_zero = int(zero.sum())
    if n_zero and not keep_zero:
        result = result.filter(~zero)
        report.exclude("zero amount", n_zero)
    report.rows_used = result.height
    return Transactions(frame=result, report=report)


def read_transactions(
    path: str | Path,
    columns: ColumnMap | None = None,
    *,
    date_format: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    amount_scale: float = 1.0,
    separator: str = ",",
    keep_zero: bool = False,
) -> Transactions:
    """Read a CSV or Parquet file (chosen by suffix) of transactions."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pl.read_parquet(p)
    elif suffix in (".csv", ".txt", ".tsv"):
        frame = pl.read_csv(
            p,
            separator="\t" if suffix == ".tsv" else separator,
            infer_schema=False,  # every column as text: parsing errors are ours to report
        )
    else:
        raise InputError(f"unsupported file type {suffix!r} (use .csv, .tsv or .parquet)")
    return normalise(
        frame,
        columns,
        source=str(p),
        date_format=date_format,
        timezone=timezone,
        amount_scale=amount_scale,
        keep_zero=keep_zero,
    )


def read_database(
    url: str,
    *,
    query: str | None = None,
    table: str = PLATFORM_TABLE,
    columns: ColumnMap | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    amount_scale: float | None = None,
    keep_zero: bool = False,
) -> Transactions:
    """Read transactions from a database through SQLAlchemy into Polars.

    ``url`` is a SQLAlchemy URL (``sqlite:///loyalist.db``,
    ``postgresql+psycopg://user@host/db``).  Either ``query`` (any SELECT) or ``table`` is
    read; by default the platform's ``orders`` table with :data:`PLATFORM_COLUMNS`, whose
    amounts are in fen (scaled by 0.01 unless ``amount_scale`` says otherwise).
    """
    from sqlalchemy import create_engine, text

    cmap = columns or PLATFORM_COLUMNS
    if amount_scale is None:
        amount_scale = PLATFORM_AMOUNT_SCALE if cmap == PLATFORM_COLUMNS else 1.0
    if query is None:
        if not table.replace("_", "").replace(".", "").isalnum():
            raise InputError(f"invalid table name {table!r}")
        names = [cmap.customer, cmap.timestamp, cmap.amount, *cmap.optional().values()]
        select = ", ".join(f'"{n}"' for n in names)
        query = f'SELECT {select} FROM "{table}"'
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            frame = pl.read_database(text(query), conn, infer_schema_length=None)
    except Exception as exc:  # the driver's own error types vary by backend
        raise InputError(f"cannot read transactions from the database: {exc}") from exc
    finally:
        engine.dispose()
    return normalise(
        frame,
        cmap,
        source=_redact(url),
        timezone=timezone,
        amount_scale=amount_scale,
        keep_zero=keep_zero,
    )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL fails in create_engine with a clearer message
        return "database"


def read_cdnow(path: str | Path) -> Transactions:
    """Read a CDNOW file (``CDNOW_master.txt`` or ``CDNOW_sample.txt``).

    Master lines are ``customer date cds dollars`` (after a header); sample lines carry an
    extra leading master id: ``master_id sample_id date cds dollars``.  Dates are YYYYMMDD.
    """
    p = Path(path)
    lines = pl.read_csv(
        p, has_header=False, new_columns=["line"], separator="\x1f", infer_schema=False
    )
    parts = (
        lines["line"]
        .str.strip_chars()
        .str.split(" ")
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    width = parts.list.len()
    header = parts.list.first().str.contains("[A-Za-z]").fill_null(False)
    parts = parts.filter(~header)
    width = width.filter(~header)
    widths = width.unique().to_list()
    if len(widths) != 1 or widths[0] not in (4, 5):
        raise InputError(f"{p} is not a CDNOW file (unexpected number of fields)")
    offset = 1 if widths[0] == 5 else 0
    frame = pl.DataFrame(
        {
            "customer_id": parts.list.get(offset),
            "date": parts.list.get(offset + 1),
            "cds": parts.list.get(offset + 2),
            "amount": parts.list.get(offset + 3),
        }
    )
    return normalise(
        frame,
        ColumnMap(customer="customer_id", timestamp="date", amount="amount"),
        source=str(p),
        date_format="%Y%m%d",
        keep_zero=True,  # a $0 line is still a CD bought (promotions)
    )
