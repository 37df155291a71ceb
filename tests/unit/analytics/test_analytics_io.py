"""Reading and validating transactions: canonical columns, exact errors naming the rows,
and a load report that accounts for every row."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from loyalist.analytics.errors import InputError, MissingColumnError
from loyalist.analytics.io import (
    ColumnMap,
    Transactions,
    normalise,
    read_cdnow,
    read_transactions,
)

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow"


def _accounted(tx: Transactions) -> None:
    rep = tx.report
    assert rep.rows_read == rep.rows_used + sum(rep.excluded.values())
    anon = tx.anonymous.height if tx.anonymous is not None else 0
    assert rep.rows_used == tx.frame.height + anon


def test_csv_with_named_columns_becomes_canonical(tmp_path: Path) -> None:
    # given a CSV with its own column names, thousands separators and a member flag
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_no,cust,paid_at,total,shop,src,level,vip\n"
        'A1,c1,2024-03-01 10:00:00,"1,200.50",s1,pos,gold,yes\n'
        "A2,c2,2024-03-02,30,s2,app,base,no\n"
        "A3, c1 ,2024-03-05T08:30:00,12.5,s1,pos,gold,1\n",
        encoding="utf-8",
    )
    cmap = ColumnMap(
        customer="cust",
        timestamp="paid_at",
        amount="total",
        order_id="order_no",
        store="shop",
        channel="src",
        tier="level",
        member="vip",
    )
    # when it is read
    tx = read_transactions(path, cmap)
    # then every column is canonical and exact
    assert tx.frame.columns == [
        "customer_id",
        "occurred_at",
        "amount",
        "order_id",
        "store",
        "channel",
        "tier",
        "is_member",
    ]
    assert tx.frame.to_dicts() == [
        {
            "customer_id": "c1",
            "occurred_at": dt.datetime(2024, 3, 1, 10, 0),
            "amount": 1200.5,
            "order_id": "A1",
            "store": "s1",
            "channel": "pos",
            "tier": "gold",
            "is_member": True,
        },
        {
            "customer_id": "c2",
            "occurred_at": dt.datetime(2024, 3, 2, 0, 0),
            "amount": 30.0,
            "order_id": "A2",
            "store": "s2",
            "channel": "app",
            "tier": "base",
            "is_member": False,
        },
        {
            "customer_id": "c1",
            "occurred_at": dt.datetime(2024, 3, 5, 8, 30),
            "amount": 12.5,
            "order_id": "A3",
            "store": "s1",
            "channel": "pos",
            "tier": "gold",
            "is_member": True,
        },
    ]
    assert tx.report.to_dict() == {
        "source": str(path),
        "rows_read": 3,
        "rows_used": 3,
        "excluded": {},
        "anonymous_orders": 0,
        "returns_netted": 0,
        "notes": [],
    }
    assert tx.anonymous is None


def test_missing_columns_are_named_with_what_is_available() -> None:
    frame = pl.DataFrame({"cust": ["a"], "when": ["2024-01-01"], "total": [1.0]})
    with pytest.raises(MissingColumnError) as exc:
        normalise(frame, ColumnMap(customer="cust", timestamp="paid_at", amount="amount"))
    assert str(exc.value) == (
        "missing column(s) 'paid_at', 'amount' in frame; available: cust, when, total"
    )
    assert exc.value.code == "missing_column"


def _frame(**cols: list[object]) -> pl.DataFrame:
    base: dict[str, list[object]] = {
        "customer_id": ["a", "b", "c", "d", "e"],
        "occurred_at": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"],
        "amount": ["10", "20", "30", "40", "50"],
        "order_id": ["o1", "o2", "o3", "o4", "o5"],
    }
    base.update(cols)
    return pl.DataFrame(base, schema=dict.fromkeys(base, pl.Utf8))


ORDERS = ColumnMap(order_id="order_id")


def test_unparsable_dates_name_the_rows_and_order_ids() -> None:
    frame = _frame(occurred_at=["2024-01-01", "01/02/2024", "2024-01-03", "yesterday", None])
    with pytest.raises(InputError) as exc:
        normalise(frame, ORDERS)
    assert exc.value.rows == [2, 4, 5]
    assert exc.value.order_ids == ["o2", "o4", "o5"]
    assert exc.value.column == "occurred_at"
    assert str(exc.value) == (
        "unparsable or empty date in 'occurred_at' (rows 2, 4, 5; order ids o2, o4, o5; 3 in total)"
    )


def test_a_date_format_is_applied_strictly() -> None:
    frame = _frame(occurred_at=["20240101", "20240102", "2024-01-03", "20240104", "20240105"])
    with pytest.raises(InputError) as exc:
        normalise(frame, ORDERS, date_format="%Y%m%d")
    assert exc.value.rows == [3]
    assert "(expected format %Y%m%d)" in str(exc.value)


def test_negative_and_unparsable_amounts_name_the_rows() -> None:
    with pytest.raises(InputError) as exc:
        normalise(_frame(amount=["10", "-5", "30", "-0.01", "50"]), ORDERS)
    assert exc.value.rows == [2, 4]
    assert exc.value.order_ids == ["o2", "o4"]
    assert str(exc.value).startswith("negative amount in 'amount'")
    with pytest.raises(InputError) as exc:
        normalise(_frame(amount=["10", "abc", "", "40", "inf"]), ORDERS)
    assert exc.value.rows == [2, 3, 5]


def test_duplicate_order_ids_name_every_duplicate_row() -> None:
    with pytest.raises(InputError) as exc:
        normalise(_frame(order_id=["o1", "o2", "o1", "o4", "o2"]), ORDERS)
    assert exc.value.rows == [1, 2, 3, 5]
    assert exc.value.order_ids == ["o1", "o2", "o1", "o2"]
    assert str(exc.value).startswith("duplicate order id in 'order_id' (rows 1, 2, 3, 5;")


def test_long_lists_of_bad_rows_are_shortened_but_counted() -> None:
    n = 25
    frame = pl.DataFrame(
        {
            "customer_id": ["a"] * n,
            "occurred_at": ["bad"] * n,
            "amount": ["1"] * n,
        }
    )
    with pytest.raises(InputError) as exc:
        normalise(frame)
    assert exc.value.rows == list(range(1, n + 1))
    assert "(rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 15 more; 25 in total)" in str(exc.value)


def test_empty_customer_ids_are_an_error_unless_anonymous_orders_are_allowed() -> None:
    frame = _frame(customer_id=["a", "", "c", None, "  "], amount=["10", "20", "30", "40", "0"])
    with pytest.raises(InputError) as exc:
        normalise(frame, ORDERS)
    assert exc.value.rows == [2, 4, 5]
    # with anonymous orders allowed they are kept apart, zero-value ones still excluded
    tx = normalise(frame, ORDERS, anonymous=True)
    assert tx.frame["customer_id"].to_list() == ["a", "c"]
    assert tx.anonymous is not None
    assert tx.anonymous["order_id"].to_list() == ["o2", "o4"]
    assert "customer_id" not in tx.anonymous.columns
    assert tx.report.anonymous_orders == 2
    assert tx.report.excluded == {"zero amount": 1}
    assert tx.report.rows_used == 4
    _accounted(tx)


def test_zero_amounts_are_excluded_and_counted_never_silently_dropped() -> None:
    tx = normalise(_frame(amount=["0", "20", "0.00", "40", "50"]), ORDERS)
    assert tx.frame["order_id"].to_list() == ["o2", "o4", "o5"]
    assert tx.report.excluded == {"zero amount": 2}
    _accounted(tx)
    kept = normalise(_frame(amount=["0", "20", "0.00", "40", "50"]), ORDERS, keep_zero=True)
    assert kept.frame.height == 5
    assert kept.report.excluded == {}


def test_refunds_are_netted_and_fully_returned_orders_counted_as_such() -> None:
    frame = _frame(amount=["100", "20", "30", "0", "50"]).with_columns(
        pl.Series("refund", ["0", "20", "12.5", "0", None])
    )
    tx = normalise(frame, ColumnMap(order_id="order_id", refund="refund"), amount_scale=0.01)
    assert tx.frame.select("order_id", "amount").rows() == [
        ("o1", 1.0),
        ("o3", 0.175),
        ("o5", 0.5),
    ]
    assert tx.report.excluded == {"fully returned (net amount zero)": 1, "zero amount": 1}
    assert tx.report.returns_netted == 1
    assert tx.report.notes == [
        "1 partly returned orders counted net of their refunds, on the order's date"
    ]
    _accounted(tx)


def test_a_refund_larger_than_the_amount_is_an_error() -> None:
    frame = _frame().with_columns(pl.Series("refund", ["0", "25", "0", "0", "-1"]))
    with pytest.raises(InputError) as exc:
        normalise(frame, ColumnMap(order_id="order_id", refund="refund"))
    assert exc.value.rows == [5]  # the negative refund is reported first
    frame = _frame().with_columns(pl.Series("refund", ["0", "25", "0", "0", "0"]))
    with pytest.raises(InputError) as exc:
        normalise(frame, ColumnMap(order_id="order_id", refund="refund"))
    assert exc.value.rows == [2]
    assert str(exc.value).startswith("refund in 'refund' larger than the amount in 'amount'")


def test_timestamps_become_wall_clock_time_in_the_analysis_zone() -> None:
    stamps = [
        "2024-01-31T20:00:00Z",  # UTC: 04:00 next day in Shanghai
        "2024-02-01 09:30",
        "2024-02-01T12:00:00+08:00",
        "2024/3/4 10:11:12",
        "20240305",
    ]
    frame = _frame(occurred_at=stamps)
    local = normalise(frame).frame["occurred_at"]
    assert local.to_list() == [
        dt.datetime(2024, 2, 1, 4, 0),
        dt.datetime(2024, 2, 1, 9, 30),
        dt.datetime(2024, 2, 1, 12, 0),
        dt.datetime(2024, 3, 4, 10, 11, 12),
        dt.datetime(2024, 3, 5, 0, 0),
    ]
    # naive stamps stored in UTC (the platform's database) are converted too
    utc = normalise(frame, naive_timezone="UTC").frame["occurred_at"].to_list()
    assert utc[1] == dt.datetime(2024, 2, 1, 17, 30)
    assert utc[0] == dt.datetime(2024, 2, 1, 4, 0)  # an explicit offset wins
    # and another analysis zone moves the calendar day
    ny = normalise(frame, timezone="America/New_York").frame["occurred_at"].to_list()
    assert ny[0] == dt.datetime(2024, 1, 31, 15, 0)


def test_polars_datetimes_and_dates_are_accepted_as_they_are() -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "occurred_at": [dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
            "amount": [1, 2],
        }
    )
    assert normalise(frame).frame["occurred_at"].to_list() == [
        dt.datetime(2024, 1, 1),
        dt.datetime(2024, 1, 2),
    ]
    aware = frame.with_columns(
        pl.col("occurred_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
    assert normalise(aware).frame["occurred_at"].to_list() == [
        dt.datetime(2024, 1, 1, 8),
        dt.datetime(2024, 1, 2, 8),
    ]


def test_whitespace_separated_files_with_a_header_read_like_cdnow() -> None:
    # the CDNOW master file read as generic whitespace-separated text with named columns
    generic = read_transactions(
        CDNOW / "CDNOW_master.txt",
        ColumnMap(customer="customer_id", timestamp="date", amount="dollar_value"),
        separator="whitespace",
        date_format="%Y%m%d",
        keep_zero=True,
    )
    special = read_cdnow(CDNOW / "CDNOW_master.txt")
    assert generic.frame.equals(special.frame)
    assert generic.report.rows_read == 69659
    assert special.frame["customer_id"].n_unique() == 23570
    # zero-dollar lines are counted when excluded
    excluded = read_transactions(
        CDNOW / "CDNOW_master.txt",
        ColumnMap(customer="customer_id", timestamp="date", amount="dollar_value"),
        separator="whitespace",
        date_format="%Y%m%d",
    )
    n_zero = int((special.frame["amount"] == 0).sum())
    assert n_zero > 0
    assert excluded.report.excluded == {"zero amount": n_zero}
    assert excluded.frame.height == 69659 - n_zero


def test_headerless_files_name_columns_by_position(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("c1  20240101 \t 5\nc2 20240102 7\n\n", encoding="utf-8")
    tx = read_transactions(
        path,
        ColumnMap(customer="column_1", timestamp="column_2", amount="column_3"),
        separator="whitespace",
        has_header=False,
        date_format="%Y%m%d",
    )
    assert tx.frame.select("customer_id", "amount").rows() == [("c1", 5.0), ("c2", 7.0)]


def test_ragged_whitespace_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("id date amount\nc1 20240101 5\nc2 20240102\nc3 20240103 1 extra\n")
    with pytest.raises(InputError) as exc:
        read_transactions(path, separator="whitespace")
    assert exc.value.rows == [2, 3]


def test_cdnow_sample_has_an_extra_leading_id() -> None:
    tx = read_cdnow(CDNOW / "CDNOW_sample.txt")
    assert tx.frame.height == 6919
    assert tx.frame["customer_id"].n_unique() == 2357
    assert tx.frame.row(0) == ("0001", dt.datetime(1997, 1, 1), 29.33)


def test_parquet_and_tab_separated_files(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "occurred_at": [dt.datetime(2024, 1, 1, 9), dt.datetime(2024, 1, 2, 9)],
            "amount": [1.5, 2.5],
        }
    )
    frame.write_parquet(tmp_path / "t.parquet")
    assert read_transactions(tmp_path / "t.parquet").frame.equals(frame)
    (tmp_path / "t.tsv").write_text("customer_id\toccurred_at\tamount\na\t2024-01-01 09:00\t1.5\n")
    assert read_transactions(tmp_path / "t.tsv").frame.row(0) == (
        "a",
        dt.datetime(2024, 1, 1, 9),
        1.5,
    )


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_transactions(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="file not found"):
        read_cdnow(tmp_path / "nope.txt")
