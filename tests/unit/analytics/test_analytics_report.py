"""The HTML report: one self-contained file (inline CSS and SVG charts, no script, no
external resource), every section present, in English or Chinese."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from loyalist.analytics.errors import AnalyticsError
from loyalist.analytics.i18n import KPI_LABELS, SEGMENT_NAMES_ZH
from loyalist.analytics.io import Transactions, normalise, read_cdnow
from loyalist.analytics.kpis import KPI_NAMES
from loyalist.analytics.report import ReportOptions, build_report, write_report

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow"
SVG_NS = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def sample() -> Transactions:
    return read_cdnow(CDNOW / "CDNOW_sample.txt")


def assert_self_contained(html: str) -> None:
    """Nothing in the page would make a browser fetch anything."""
    assert html.startswith("<!DOCTYPE html>")
    lowered = html.lower()
    for marker in ("<script", "<link", "<iframe", "<img", "<object", "<embed", "@import"):
        assert marker not in lowered, marker
    assert re.search(r"""\b(src|href|srcset|action|poster)\s*=""", lowered) is None
    assert re.search(r"url\s*\(", lowered) is None
    # the only absolute URL is the SVG namespace name, which is never fetched
    assert set(re.findall(r"""(?:https?:)?//[^\s'"<>)]+""", html)) <= {SVG_NS}


def test_english_report_has_every_section_and_embeds_its_charts(sample: Transactions) -> None:
    html = build_report(sample, ReportOptions(lang="en", currency="$"))
    assert_self_contained(html)
    assert "<html lang='en'>" in html
    assert re.findall(r"<h2>(.*?)</h2>", html) == [
        "Programme KPIs",
        "RFM segments",
        "Cohort retention",
        "Lifetime value and churn risk",
        "Holdout validation",
        "K-means segments",
    ]
    assert "Skipped" not in html
    # charts: segment shares, retention curve, P(alive) histogram, CLV deciles,
    # predicted vs actual in the holdout, silhouette by k: all inline SVG with shapes
    svgs = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert len(svgs) == 6
    assert all("<rect" in s or "<polyline" in s for s in svgs)
    for name in KPI_NAMES:
        assert f"<td>{KPI_LABELS[name][0]}</td>" in html, name
    assert "BG/NBD" in html and "Gamma-Gamma" in html
    assert "Rows read / used" in html and "6,919 / 6,919" in html


def test_chinese_report_uses_the_glossary(sample: Transactions) -> None:
    html = build_report(sample, ReportOptions(lang="zh"))
    assert_self_contained(html)
    assert "<html lang='zh-CN'>" in html
    assert "<title>客户分析报告</title>" in html
    assert "核心指标" in html and "同期群留存" in html and "留出期验证" in html
    assert SEGMENT_NAMES_ZH["Champions"] in html
    assert "Champions" not in html
    for name in KPI_NAMES:
        assert KPI_LABELS[name][1] in html, name


def test_sections_that_cannot_be_computed_say_why_and_the_rest_is_kept() -> None:
    # three one-order customers: no repeat buyer, so no spend model and no holdout
    tx = normalise(
        pl.DataFrame(
            {
                "customer_id": ["a", "b", "c"],
                "occurred_at": ["2024-01-01", "2024-02-01", "2024-03-01"],
                "amount": [10.0, 20.0, 30.0],
            }
        )
    )
    html = build_report(tx, ReportOptions(clusters=False))
    assert_self_contained(html)
    assert re.findall(r"<h2>(.*?)</h2>", html) == [
        "Programme KPIs",
        "RFM segments",
        "Cohort retention",
        "Lifetime value and churn risk",
        "Holdout validation",
    ]
    skipped = re.findall(r"<p class='skipped'>(.*?)</p>", html)
    assert len(skipped) == 2
    assert all(s.startswith("Skipped: ") for s in skipped)


def test_text_from_the_data_is_escaped(sample: Transactions) -> None:
    tx = Transactions(frame=sample.frame, report=sample.report)
    tx.report = type(sample.report)(source="<script>alert(1)</script>", rows_read=1)
    html = build_report(tx, ReportOptions(clusters=False, title="Q&A <b>"))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<title>Q&amp;A &lt;b&gt;</title>" in html


def test_progress_is_reported_per_section_and_the_file_written(
    sample: Transactions, tmp_path: Path
) -> None:
    seen: list[str] = []
    path = write_report(sample, tmp_path / "r" / "report.html", ReportOptions(), seen.append)
    assert seen == ["kpis", "rfm", "cohorts", "clv", "validation", "clusters"]
    html = path.read_text(encoding="utf-8")
    assert_self_contained(html)
    assert html.endswith("</html>")


def test_unknown_language_is_refused(sample: Transactions) -> None:
    with pytest.raises(AnalyticsError, match="'en' or 'zh'"):
        build_report(sample, ReportOptions(lang="fr"))
