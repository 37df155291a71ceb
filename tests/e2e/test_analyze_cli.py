"""``loyalist analyze``: the --json output equals the Python API's result for every
analysis, human tables otherwise, exports, errors naming rows, and the CDNOW text format
read through command-line options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from loyalist.analytics import (
    ColumnMap,
    RFMConfig,
    Transactions,
    analyze_clv,
    analyze_cohorts,
    analyze_kpis,
    analyze_rfm,
    analyze_segments,
    read_cdnow,
    read_transactions,
)
from loyalist.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "cdnow" / "CDNOW_sample.txt"
MASTER = ROOT / "tests" / "data" / "cdnow" / "CDNOW_master.txt"
CDNOW_OPTIONS = [
    "--input",
    str(MASTER),
    "--separator",
    "whitespace",
    "--columns",
    "customer=customer_id,time=date,amount=dollar_value",
    "--date-format",
    "%Y%m%d",
]

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["analyze", *args])


def cli_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def assert_same_json(got: Any, expected: Any, path: str = "$") -> None:
    """Equal JSON, floats to 1e-9 relative: Polars sums floats in parallel chunks, so two
    runs may differ in the last bits; everything else (keys, order, types, text) is exact."""
    if isinstance(expected, float) and isinstance(got, float | int):
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), path
        return
    assert type(got) is type(expected), (path, got, expected)
    if isinstance(expected, dict):
        assert list(got) == list(expected), path
        for k in expected:
            assert_same_json(got[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_same_json(g, e, f"{path}[{i}]")
    else:
        assert got == expected, (path, got, expected)


def without_timings(value: Any) -> Any:
    """Fit durations differ between two runs; everything else must not."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


@pytest.fixture(scope="module")
def sample() -> Transactions:
    return read_cdnow(SAMPLE)


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small shop export with its own column names, a member flag and anonymous rows."""
    path = tmp_path_factory.mktemp("shop") / "orders.csv"
    lines = ["order_no,cust,paid_at,total,refunded,vip"]
    n = 0
    for c in range(30):
        for k in range(1 + c % 4):
            n += 1
            day = 1 + (c * 7 + k * 23) % 170
            month, dom = 1 + (day - 1) // 28, 1 + (day - 1) % 28
            refund = "5" if n % 11 == 0 else "0"
            lines.append(
                f"o{n},c{c:02d},2024-{month:02d}-{dom:02d} 12:00,{20 + c + k},{refund},{c % 2}"
            )
    lines.append("o900,,2024-06-01 09:00,15,0,0")  # anonymous
    lines.append("o901,c01,2024-06-02 09:00,10,10,1")  # fully returned
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


CSV_COLUMNS = "customer=cust,time=paid_at,amount=total,refund=refunded,order=order_no,member=vip"


@pytest.fixture(scope="module")
def shop(orders_csv: Path) -> Transactions:
    return read_transactions(
        orders_csv,
        ColumnMap(
            customer="cust",
            timestamp="paid_at",
            amount="total",
            refund="refunded",
            order_id="order_no",
            member="vip",
        ),
        anonymous=True,
    )


def test_rfm_json_equals_the_api(orders_csv: Path, shop: Transactions) -> None:
    got = cli_json(
        "rfm",
        "--input",
        str(orders_csv),
        "--columns",
        CSV_COLUMNS,
        "--anonymous",
        "--as-of",
        "2024-06-30",
        "--transitions-from",
        "2024-03-31",
    )
    assert_same_json(got, analyze_rfm(shop, as_of="2024-06-30", transitions_from="2024-03-31"))
    assert got["load"]["anonymous_orders"] == 1
    assert got["load"]["excluded"] == {"fully returned (net amount zero)": 1}


def test_cohorts_json_equals_the_api(orders_csv: Path, shop: Transactions) -> None:
    got = cli_json(
        "cohorts",
        "--input",
        str(orders_csv),
        "--columns",
        CSV_COLUMNS,
        "--anonymous",
        "--granularity",
        "week",
        "--periods",
        "8",
    )
    assert_same_json(got, analyze_cohorts(shop, granularity="week", periods=8))


def test_kpis_json_equals_the_api(orders_csv: Path, shop: Transactions) -> None:
    got = cli_json(
        "kpis",
        "--input",
        str(orders_csv),
        "--columns",
        CSV_COLUMNS,
        "--anonymous",
        "--start",
        "2024-04-01",
        "--end",
        "2024-06-30",
    )
    assert_same_json(got, analyze_kpis(shop, start="2024-04-01", end="2024-06-30"))
    assert set(got) >= {"overall", "members", "non_members"}
    seg = cli_json(
        "kpis",
        "--input",
        str(orders_csv),
        "--columns",
        CSV_COLUMNS,
        "--anonymous",
        "--end",
        "2024-06-30",
        "--segment",
        "Champions",
    )
    assert_same_json(seg, analyze_kpis(shop, end="2024-06-30", segment="Champions"))


def test_clv_json_equals_the_api(sample: Transactions) -> None:
    got = cli_json(
        "clv",
        "--input",
        str(SAMPLE),
        "--cdnow",
        "--keep-zero",
        "--observation-end",
        "1998-06-30",
        "--calibration-end",
        "1997-09-30",
        "--top",
        "5",
    )
    expected, _ = analyze_clv(
        sample, observation_end="1998-06-30", calibration_end="1997-09-30", top=5
    )
    assert got["purchase_model"]["seconds"] > 0
    assert_same_json(without_timings(got), without_timings(expected))
    assert got["customers"] == 2357
    assert len(got["top_customers"]) == 5
    assert got["validation"]["calibration_end"] == "1997-09-30"


def test_segments_json_equals_the_api(sample: Transactions) -> None:
    got = cli_json(
        "segments", "--input", str(SAMPLE), "--cdnow", "--keep-zero", "--k-max", "5", "--seed", "3"
    )
    expected, _ = analyze_segments(sample, k_range=range(2, 6), seed=3)
    assert_same_json(got, expected)
    assert 2 <= got["k"] <= 5
    assert len(got["descriptions"]) == got["k"]


def test_human_tables_and_chinese_names(orders_csv: Path) -> None:
    result = invoke(
        "rfm",
        "--input",
        str(orders_csv),
        "--columns",
        CSV_COLUMNS,
        "--anonymous",
        "--lang",
        "zh",
    )
    assert result.exit_code == 0, result.stderr
    assert "RFM segments as of 2024-07-01 (30 customers)" in result.stdout
    assert "重要价值客户" in result.stdout
    assert "1 anonymous orders" in result.stderr  # the load report goes to stderr
    kpis = invoke("kpis", "--input", str(orders_csv), "--columns", CSV_COLUMNS, "--anonymous")
    assert kpis.exit_code == 0, kpis.stderr
    for label in ("Active customers", "Repurchase rate", "Churn rate", "Members", "Non-members"):
        assert label in kpis.stdout


def test_exports_of_per_customer_scores(
    orders_csv: Path, shop: Transactions, tmp_path: Path
) -> None:
    csv_path, xlsx_path = tmp_path / "rfm.csv", tmp_path / "clv.xlsx"
    r = invoke(
        "rfm",
        "--input",
        str(orders_csv),
        "--columns",
        CSV_COLUMNS,
        "--anonymous",
        "--export",
        str(csv_path),
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    header, *rows = csv_path.read_text(encoding="utf-8").splitlines()
    assert header.startswith("customer_id,recency_days,frequency,monetary,")
    assert header.endswith(",r_score,f_score,m_score,rfm_code,segment")
    assert len(rows) == shop.frame["customer_id"].n_unique()
    r = invoke(
        "clv",
        "--input",
        str(SAMPLE),
        "--cdnow",
        "--keep-zero",
        "--export",
        str(xlsx_path),
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    ws = load_workbook(xlsx_path).active
    assert ws is not None
    head = [c.value for c in ws[1]]
    assert {"customer_id", "probability_alive", "expected_purchases", "clv"} <= set(head)
    assert ws.max_row == 2357 + 1


def test_bad_input_names_the_rows_in_json_and_in_words(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "customer_id,occurred_at,amount,order_id\n"
        "a,2024-01-01,10,o1\nb,2024-13-45,10,o2\nc,2024-01-03,-4,o3\nd,someday,5,o4\n"
    )
    r = invoke("rfm", "--input", str(path), "--columns", "order=order_id", "--json")
    assert r.exit_code == 2
    assert json.loads(r.stdout) == {
        "error": {
            "code": "invalid_input",
            "message": "unparsable or empty date in 'occurred_at' "
            "(rows 2, 4; order ids o2, o4; 2 in total)",
            "rows": [2, 4],
            "order_ids": ["o2", "o4"],
            "column": "occurred_at",
        }
    }
    r = invoke("kpis", "--input", str(path), "--columns", "order=order_id")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "error: unparsable or empty date in 'occurred_at'" in r.stderr
    missing = invoke("rfm", "--input", str(path), "--columns", "amount=total", "--json")
    assert missing.exit_code == 2
    assert json.loads(missing.stdout)["error"]["code"] == "missing_column"
    both = invoke("rfm", "--input", str(path), "--database-url", "sqlite://", "--json")
    assert json.loads(both.stdout)["error"]["message"] == (
        "give exactly one of --input FILE or --database-url URL"
    )


def test_cdnow_through_generic_options_equals_the_cdnow_reader() -> None:
    generic = cli_json("rfm", *CDNOW_OPTIONS, "--keep-zero")
    special = cli_json("rfm", "--input", str(MASTER), "--cdnow", "--keep-zero")
    assert_same_json(generic["segments"], special["segments"])
    assert generic["customers"] == 23570
    without_zero = cli_json("rfm", *CDNOW_OPTIONS)
    assert without_zero["load"] == {
        **cli_json("rfm", "--input", str(MASTER), "--cdnow")["load"],
        "source": str(MASTER),
    }
    assert without_zero["load"]["rows_read"] == 69659
    assert without_zero["load"]["excluded"] == {
        "zero amount": 69659 - without_zero["load"]["rows_used"]
    }


def test_the_installed_command_runs_in_its_own_process(orders_csv: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loyalist.cli.main",
            "analyze",
            "cohorts",
            "--input",
            str(orders_csv),
            "--columns",
            CSV_COLUMNS,
            "--anonymous",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["granularity"] == "month"
    assert proc.stderr == ""  # no progress bar without a terminal, nothing else either


def test_rfm_thresholds_from_the_command_line(orders_csv: Path, shop: Transactions) -> None:
    got = cli_json(
        "rfm",
        "--input",
        str(orders_csv),
        "--columns",
        CSV_COLUMNS,
        "--anonymous",
        "--recency-thresholds",
        "7,30,90,180",
        "--frequency-thresholds",
        "1,2,3,4",
        "--monetary-thresholds",
        "25,50,75,100",
    )
    cfg = RFMConfig(
        recency_thresholds=(7, 30, 90, 180),
        frequency_thresholds=(1, 2, 3, 4),
        monetary_thresholds=(25, 50, 75, 100),
    )
    assert_same_json(got, analyze_rfm(shop, config=cfg))
    quantiles = cli_json("rfm", "--input", str(orders_csv), "--columns", CSV_COLUMNS, "--anonymous")
    assert got["segments"] != quantiles["segments"]
    bad = invoke(
        "rfm",
        "--input",
        str(orders_csv),
        "--columns",
        CSV_COLUMNS,
        "--anonymous",
        "--recency-thresholds",
        "7,30",
        "--json",
    )
    assert bad.exit_code == 2
    assert json.loads(bad.stdout)["error"]["message"] == (
        "recency_thresholds needs 4 values for 5 bins"
    )
