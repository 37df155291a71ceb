"""One self-contained HTML report (inline CSS and SVG charts; nothing loaded from outside)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import polars as pl

from loyalist.analytics import charts
from loyalist.analytics.clv import ModelName, fit_clv
from loyalist.analytics.cohorts import cohort_table, retention_matrix
from loyalist.analytics.errors import AnalyticsError
from loyalist.analytics.i18n import (
    KPI_DEFINITIONS,
    MODEL_NAMES,
    SEGMENT_ACTIONS,
    exclusion_label,
    fmt_kpi,
    fmt_number,
    idx,
    kpi_label,
    segment_label,
    t,
)
from loyalist.analytics.io import Transactions
from loyalist.analytics.kpis import KPI_NAMES, compute_kpis
from loyalist.analytics.rfm import rfm_scores, segment_summary, segment_transitions
from loyalist.analytics.segments import kmeans_segments
from loyalist.analytics.summary import DateLike, first_date, last_date, summarise, to_date
from loyalist.analytics.validation import holdout_validation

Progress = Callable[[str], None]

STEPS = ("kpis", "rfm", "cohorts", "clv", "validation", "clusters")

_CSS = """
body{font-family:system-ui,-apple-system,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;
margin:0;background:#f6f7f9;color:#1d2330;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:0 0 12px}
section{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:18px 20px;margin:18px 0}
.tw{overflow-x:auto;margin:8px 0}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #eceef2;padding:5px 8px;text-align:right;white-space:nowrap}
th{background:#f1f3f6;font-weight:600;white-space:normal;vertical-align:bottom}
td:first-child,th:first-child{text-align:left}
td.wrap,th.wrap{white-space:normal;text-align:left;min-width:240px}
h3{font-size:15px;margin:18px 0 6px}
.chart{margin:6px 0 10px}.chart svg{display:block}.chart.half{max-width:540px}
.meta{color:#5b6472;font-size:13px}.note{color:#5b6472;font-size:13px;margin:4px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0}
.card{flex:1 1 180px;border:1px solid #e2e5ea;border-radius:6px;padding:10px 12px}
.card .v{font-size:22px;font-weight:600}.card .k{color:#5b6472;font-size:12px}
.skipped{color:#a4462d}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media (max-width:800px){.grid2{grid-template-columns:1fr}}
"""


@dataclass(frozen=True)
class ReportOptions:
    lang: str = "en"
    as_of: DateLike | None = None
    kpi_days: int = 90
    calibration_end: DateLike | None = None
    unit: str = "W"
    model: ModelName = "bgnbd"
    horizon_days: float = 365.0
    discount_rate: float = 0.10
    margin: float = 1.0
    currency: str = ""
    clusters: bool = True
    title: str | None = None


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], wrap_last: bool = False) -> str:
    """A table in a horizontally scrollable box (wide tables never break the page);
    ``wrap_last``: the last column is free text that wraps."""

    def cls(i: int, n: int) -> str:
        return " class='wrap'" if wrap_last and i == n - 1 else ""

    head = "".join(f"<th{cls(i, len(headers))}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = [
        "<tr>"
        + "".join(f"<td{cls(i, len(row))}>{escape(cell)}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    ]
    return (
        f"<div class='tw'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


#: Chart widths in SVG units, close to the pixels they are shown at (a 1,100 px page), so
#: that the 12-unit text of the charts reads at about 12 px.
FULL = 1000
HALF = 500


def _chart(svg: str) -> str:
    return f"<div class='chart'>{svg}</div>"


def _pct(v: float) -> str:
    return fmt_number(v, "rate")


class _Builder:
    def __init__(self, tx: Transactions, opts: ReportOptions, progress: Progress | None) -> None:
        self.tx = tx
        self.o = opts
        self.lang = opts.lang
        self.progress = progress or (lambda _step: None)
        self.as_of = to_date(opts.as_of, "as_of") if opts.as_of else last_date(tx)
        self.sections: list[str] = []
        self.rfm: pl.DataFrame | None = None
        self.gran = "month"
        self.clv_frame: pl.DataFrame | None = None

    def tr(self, key: str) -> str:
        return t(key, self.lang)

    def skipped(self, title: str, exc: Exception) -> str:
        return (
            f"<section><h2>{escape(title)}</h2><p class='skipped'>{escape(self.tr('skipped'))}: "
            f"{escape(str(exc))}</p></section>"
        )

    def run(self) -> str:
        steps: list[tuple[str, str, Callable[[], str]]] = [
            ("kpis", "kpis", self.kpis),
            ("rfm", "rfm", self.rfm_section),
            ("cohorts", "cohorts", self.cohorts),
            ("clv", "clv", self.clv),
            ("validation", "validation", self.validation),
        ]
        if self.tx.has_member_flag:  # econ: selection-adjusted member effect (issue 15)
            steps.insert(1, ("effect", "effect", self.effect))
        if self.o.clusters:
            steps.append(("clusters", "clusters", self.clusters))
        for step, title_key, fn in steps:
            try:
                self.sections.append(fn())
            except AnalyticsError as exc:
                self.sections.append(self.skipped(self.tr(title_key), exc))
            self.progress(step)
        return self.page()

    # ------------------------------------------------------------------ sections
    def kpis(self) -> str:
        start = self.as_of - dt.timedelta(days=self.o.kpi_days - 1)
        rep = compute_kpis(self.tx, start, self.as_of)
        cur = self.o.currency
        cards = "".join(
            f"<div class='card'><div class='k'>{escape(kpi_label(k, self.lang))}</div>"
            f"<div class='v'>{escape(fmt_kpi(k, rep.overall[k], cur))}</div></div>"
            for k in ("active_customers", "revenue", "repurchase_rate", "churn_rate")
        )
        headers = [self.tr("kpi"), self.tr("all")]
        if rep.members is not None:
            headers += [self.tr("members"), self.tr("non_members")]
        headers.append(self.tr("definition"))
        rows = []
        for k in KPI_NAMES:
            row = [kpi_label(k, self.lang), fmt_kpi(k, rep.overall[k], cur)]
            if rep.members is not None and rep.non_members is not None:
                row += [fmt_kpi(k, rep.members[k], cur), fmt_kpi(k, rep.non_members[k], cur)]
            row.append(KPI_DEFINITIONS[k][idx(self.lang)])
            rows.append(row)
        period = f"{self.tr('period')}: {rep.start.isoformat()} – {rep.end.isoformat()}"
        return (
            f"<section><h2>{escape(self.tr('kpis'))}</h2><p class='note'>{escape(period)}</p>"
            f"<div class='cards'>{cards}</div>{_table(headers, rows, wrap_last=True)}</section>"
        )

    def effect(self) -> str:
        from loyalist.analytics.economics import member_effect

        start = self.as_of - dt.timedelta(days=self.o.kpi_days - 1)
        e = member_effect(self.tx, start - dt.timedelta(days=1), start, self.as_of)
        cur = self.o.currency
        rows = [
            [self.tr("effect_method"), self.tr("effect_matching")],
            [self.tr("effect_estimate"), fmt_kpi("arpu", e.estimate, cur)],
            [
                self.tr("effect_ci"),
                f"{fmt_kpi('arpu', e.ci_low, cur)} – {fmt_kpi('arpu', e.ci_high, cur)}",
            ],
            [self.tr("effect_naive"), fmt_kpi("arpu", e.naive, cur)],
            [self.tr("effect_counts"), f"{e.treated} / {e.controls} / {e.treated_unmatched}"],
        ]
        return (
            f"<section data-section='effect'><h2>{escape(self.tr('effect'))}</h2>"
            f"{_table([self.tr('kpi'), ''], rows, wrap_last=True)}</section>"
        )

    def rfm_section(self) -> str:
        scores = rfm_scores(self.tx, self.as_of)
        self.rfm = scores
        summ = segment_summary(scores)
        lang = self.lang
        names = [segment_label(s, lang) for s in summ["segment"].to_list()]
        chart = charts.bar_chart(
            names,
            [
                (self.tr("customer_share"), summ["customer_share"].to_list()),
                (self.tr("revenue_share"), summ["revenue_share"].to_list()),
            ],
            percent=True,
            width=FULL,
            height=340,
        )
        rows = []
        for r in summ.to_dicts():
            rows.append(
                [
                    segment_label(str(r["segment"]), lang),
                    fmt_number(float(r["customers"])),
                    _pct(float(r["customer_share"])),
                    _pct(float(r["revenue_share"])),
                    f"{float(r['mean_recency_days']):.0f}",
                    f"{float(r['mean_frequency']):.1f}",
                    fmt_number(float(r["mean_monetary"]), "money", self.o.currency),
                    SEGMENT_ACTIONS.get(str(r["segment"]), ("", ""))[idx(lang)],
                ]
            )
        table = _table(
            [
                self.tr("segment"),
                self.tr("customers"),
                self.tr("customer_share"),
                self.tr("revenue_share"),
                self.tr("recency_days"),
                self.tr("mean_frequency"),
                self.tr("mean_monetary"),
                self.tr("action"),
            ],
            rows,
            wrap_last=True,
        )
        trans_html = ""
        earlier = self.as_of - dt.timedelta(days=self.o.kpi_days)
        if earlier > first_date(self.tx):
            trans = segment_transitions(self.tx, earlier, self.as_of)
            cols = [c for c in trans.columns if c != "from"]
            trows = [
                [segment_label(str(r["from"]), lang)] + [fmt_number(float(r[c])) for c in cols]
                for r in trans.to_dicts()
            ]
            trans_html = (
                f"<h3>{escape(self.tr('transitions'))} ({earlier.isoformat()} → "
                f"{self.as_of.isoformat()})</h3>"
                + _table([self.tr("from_to"), *[segment_label(c, lang) for c in cols]], trows)
            )
        return (
            f"<section><h2>{escape(self.tr('rfm'))}</h2><p class='note'>"
            f"{escape(self.tr('as_of'))} {self.as_of.isoformat()} · {escape(self.tr('rfm_note'))}"
            f"</p>{_chart(chart)}{table}{trans_html}</section>"
        )

    def _heat_table(
        self, mat: pl.DataFrame, fmt: Callable[[float], str], top: float, cohorts: int = 24
    ) -> str:
        """Cohorts down, periods across, each cell shaded by its value / ``top``."""
        periods = [c for c in mat.columns if c not in ("cohort", "cohort_size")]
        head = [self.tr("cohort"), self.tr("cohort_size"), *periods]
        body = []
        for r in mat.to_dicts()[-cohorts:]:
            cells = [
                f"<td>{escape(str(r['cohort'])[: 10 if self.gran == 'week' else 7])}</td>",
                f"<td>{fmt_number(float(r['cohort_size']))}</td>",
            ]
            for p in periods:
                v = r[p]
                if v is None:
                    cells.append("<td></td>")
                    continue
                share = float(v) / top if top > 0 else 0.0
                bg = charts.heat_color(share)
                fg = "#ffffff" if share > 0.5 else "#1d2330"
                cells.append(f"<td style='background:{bg};color:{fg}'>{escape(fmt(float(v)))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        return (
            "<div class='tw'><table><thead><tr>"
            + "".join(f"<th>{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>"
            + "".join(body)
            + "</tbody></table></div>"
        )

    def cohorts(self) -> str:
        table = cohort_table(self.tx, "month")
        span = int(table["period_index"].max() or 0)  # type: ignore[arg-type]
        self.gran = "month"
        periods = min(span, 18)
        shown = table.filter(pl.col("period_index") <= periods)
        cur = self.o.currency
        top_rev = float(shown["cumulative_revenue_per_customer"].max() or 0.0)  # type: ignore[arg-type]
        heat = self._heat_table(retention_matrix(table, periods), _pct, 1.0)
        money = self._heat_table(
            retention_matrix(table, periods, "cumulative_revenue_per_customer"),
            lambda v: fmt_number(v, "money", cur),
            top_rev,
        )
        # retention curve over all cohorts: buyers in period k / customers of the cohorts
        # that have reached period k
        curve = (
            shown.group_by("period_index")
            .agg((pl.col("active").sum() / pl.col("cohort_size").sum()).alias("retention"))
            .sort("period_index")
        )
        chart = charts.line_chart(
            [float(v) for v in curve["period_index"].to_list()],
            [(self.tr("retention_curve"), curve["retention"].to_list())],
            percent=True,
            x_label=self.tr("period_index"),
            width=FULL,
            height=280,
        )
        return (
            f"<section><h2>{escape(self.tr('cohorts'))}</h2>"
            f"<p class='note'>{escape(self.tr('cohort_note'))}</p>{_chart(chart)}"
            f"<h3>{escape(self.tr('retention_table'))}</h3>{heat}"
            f"<h3>{escape(self.tr('revenue_table'))}</h3>{money}</section>"
        )

    def clv(self) -> str:
        summ = summarise(self.tx, observation_end=self.as_of, unit=self.o.unit)
        res = fit_clv(
            summ,
            model=self.o.model,
            unit=self.o.unit,
            horizon_days=self.o.horizon_days,
            discount_rate_annual=self.o.discount_rate,
            margin=self.o.margin,
        )
        self.clv_frame = res.customers
        info = res.to_dict()
        cur = self.o.currency
        warnings = []
        for fr in (res.purchase_model.fit_result, res.spend_model.fit_result):
            assert fr is not None
            if not fr.converged:
                warnings.append(
                    f"{MODEL_NAMES.get(fr.model, fr.model)}: {self.tr('not_converged')} "
                    f"({fr.convergence.reason})"
                )
        clv_values = res.customers["clv"]
        n_bad = int((~clv_values.is_finite()).sum())
        if n_bad:
            warnings.append(self.tr("clv_not_finite").format(n=n_bad))
        warn_html = "".join(f"<p class='skipped'>{escape(w)}</p>" for w in warnings)
        prow = []
        for fr in (res.purchase_model.fit_result, res.spend_model.fit_result):
            assert fr is not None
            params = ", ".join(
                f"{name} = {val:.4g}"
                + (
                    f" (± {fr.standard_errors[name]:.2g})"
                    if math.isfinite(fr.standard_errors.get(name, math.nan))
                    else ""
                )
                for name, val in fr.params.items()
            )
            prow.append(
                [
                    MODEL_NAMES.get(fr.model, fr.model),
                    f"{fr.n_customers:,}",
                    f"{fr.log_likelihood:,.2f}",
                    self.tr("yes") if fr.converged else self.tr("no"),
                    params,
                ]
            )
        ptable = _table(
            [
                self.tr("model"),
                self.tr("customers"),
                self.tr("log_likelihood"),
                self.tr("converged"),
                self.tr("parameters_se"),
            ],
            prow,
            wrap_last=True,
        )
        cards = (
            f"<div class='cards'><div class='card'><div class='k'>{escape(self.tr('total_clv'))}"
            f"</div><div class='v'>{escape(fmt_number(float(info['total_clv']), 'money', cur))}"  # type: ignore[arg-type]
            f"</div></div><div class='card'><div class='k'>{escape(self.tr('mean_clv'))}</div>"
            f"<div class='v'>{escape(fmt_number(float(info['mean_clv']), 'money', cur))}"  # type: ignore[arg-type]
            f"</div></div><div class='card'><div class='k'>{escape(self.tr('mean_alive'))}</div>"
            f"<div class='v'>{escape(_pct(float(info['mean_probability_alive'])))}</div></div>"  # type: ignore[arg-type]
            f"</div>"
        )
        alive = res.customers["probability_alive"].to_numpy()
        alive = alive[np.isfinite(alive)]
        counts, _ = np.histogram(alive, bins=10, range=(0.0, 1.0))
        hist = charts.bar_chart(
            [f"{i * 10}–{(i + 1) * 10}%" for i in range(10)],
            [(self.tr("customers"), [float(c) for c in counts])],
            title=self.tr("alive_hist"),
            width=HALF,
            height=280,
        )
        clv_all = clv_values.to_numpy()
        clv_sorted = np.sort(clv_all[np.isfinite(clv_all)])[::-1]
        deciles = [float(part.sum()) for part in np.array_split(clv_sorted, 10)]
        dec = charts.bar_chart(
            [f"D{i + 1}" for i in range(10)],
            [("CLV", deciles)],
            title=self.tr("clv_deciles"),
            width=HALF,
            height=280,
        )
        top = res.customers.sort("clv", descending=True).head(10)
        trows = [
            [
                str(r["customer_id"]),
                str(r["frequency"]),
                _pct(float(r["probability_alive"])),
                f"{float(r['expected_purchases']):.2f}",
                fmt_number(float(r["clv"]), "money", cur),
            ]
            for r in top.to_dicts()
        ]
        ttable = _table(
            [
                self.tr("customer_id"),
                self.tr("repeat_purchases"),
                self.tr("p_alive"),
                self.tr("expected_purchases"),
                "CLV",
            ],
            trows,
        )
        note = (
            f"{self.tr('horizon')}: {self.o.horizon_days:.0f} {self.tr('days')} · "
            f"{self.tr('discount')}: {self.o.discount_rate * 100:.1f}% · "
            f"{self.tr('margin')}: {self.o.margin * 100:.0f}%"
        )
        return (
            f"<section><h2>{escape(self.tr('clv'))}</h2><p class='note'>{escape(note)}</p>"
            f"{warn_html}{cards}{ptable}<div class='grid2'><div class='chart'>{hist}</div>"
            f"<div class='chart'>{dec}</div></div>"
            f"<h3>{escape(self.tr('top_customers'))}</h3>{ttable}</section>"
        )

    def validation(self) -> str:
        first = first_date(self.tx)
        cal_end = (
            to_date(self.o.calibration_end, "calibration_end")
            if self.o.calibration_end
            else first + (self.as_of - first) / 2
        )
        res = holdout_validation(
            self.tx,
            calibration_end=cal_end,
            holdout_end=self.as_of,
            model=self.o.model,
            unit=self.o.unit,
        )
        b = res.buckets
        if b["frequency_bucket"].to_list() == ["0"]:
            raise AnalyticsError(self.tr("no_repeat_calibration"))
        chart = charts.bar_chart(
            b["frequency_bucket"].to_list(),
            [
                (self.tr("actual"), b["actual"].to_list()),
                (self.tr("predicted"), b["predicted"].to_list()),
            ],
            x_label=self.tr("calibration_repeat"),
            width=FULL,
            height=300,
        )
        rows = [
            [
                str(r["frequency_bucket"]),
                fmt_number(float(r["customers"])),
                f"{float(r['actual']):.3f}",
                f"{float(r['predicted']):.3f}",
            ]
            for r in b.to_dicts()
        ]
        rows.append(
            [
                self.tr("total"),
                fmt_number(float(b["customers"].sum())),
                f"{res.actual_total:,.0f}",
                f"{res.predicted_total:,.0f}",
            ]
        )
        table = _table(
            [
                self.tr("calibration_repeat"),
                self.tr("customers"),
                self.tr("actual"),
                self.tr("predicted"),
            ],
            rows,
        )
        note = (
            f"{self.tr('validation_note')} {self.tr('calibration_to')} {cal_end.isoformat()}; "
            f"{self.tr('holdout_period')} {(cal_end + dt.timedelta(days=1)).isoformat()} – "
            f"{self.as_of.isoformat()}."
        )
        return (
            f"<section><h2>{escape(self.tr('validation'))}</h2><p class='note'>{escape(note)}</p>"
            f"{_chart(chart)}{table}</section>"
        )

    def clusters(self) -> str:
        if self.rfm is None:
            raise AnalyticsError("RFM scores are not available")
        frame = self.rfm
        features: tuple[str, ...] = ("recency_days", "frequency", "monetary")
        clv_ok = self.clv_frame is not None and bool(self.clv_frame["clv"].is_finite().all())
        if self.clv_frame is not None and clv_ok:
            frame = frame.join(
                self.clv_frame.select("customer_id", "clv"), on="customer_id", how="left"
            ).with_columns(pl.col("clv").fill_null(0.0))
            features = (*features, "clv")
        res = kmeans_segments(frame, features)
        cur = self.o.currency
        labels = {
            "recency_days": self.tr("median_recency"),
            "frequency": self.tr("median_orders"),
            "monetary": self.tr("median_spend"),
            "clv": self.tr("median_clv"),
        }
        prows = []
        for r in res.profiles.to_dicts():
            row = [str(r["cluster"]), fmt_number(float(r["customers"])), _pct(float(r["share"]))]
            for f in features:
                v = float(r[f])
                row.append(fmt_number(v, "money", cur) if f in ("monetary", "clv") else f"{v:,.0f}")
            prows.append(row)
        profile = _table(
            [
                self.tr("cluster"),
                self.tr("customers"),
                self.tr("customer_share"),
                *[labels[f] for f in features],
            ],
            prows,
        )
        sil = charts.bar_chart(
            [str(k) for k in res.silhouette],
            [(self.tr("silhouette_score"), list(res.silhouette.values()))],
            x_label="k",
            width=HALF,
            height=240,
        )
        items = "".join(f"<li>{escape(s)}</li>" for s in res.describe(self.lang, cur))
        feats = ", ".join(labels[f] for f in features)
        note = self.tr("clusters_note").format(features=feats)
        return (
            f"<section><h2>{escape(self.tr('clusters'))}</h2><p class='note'>{escape(note)}</p>"
            f"<p>{escape(self.tr('chosen_k'))}: <b>{res.k}</b></p><ul>{items}</ul>{profile}"
            f"<h3>{escape(self.tr('silhouette'))}</h3><div class='chart half'>{sil}</div></section>"
        )

    def page(self) -> str:
        rep = self.tx.report
        excl = ", ".join(
            f"{exclusion_label(k, self.lang)}: {v:,}" for k, v in rep.excluded.items()
        ) or self.tr("none")
        data_notes = []
        if rep.anonymous_orders:
            data_notes.append(self.tr("anonymous_note").format(n=f"{rep.anonymous_orders:,}"))
        if rep.returns_netted:
            data_notes.append(self.tr("returns_note").format(n=f"{rep.returns_netted:,}"))
        notes_html = "".join(f"<p class='meta'>{escape(n)}</p>" for n in data_notes)
        title = self.o.title or self.tr("title")
        lang_attr = "zh-CN" if self.lang == "zh" else "en"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        meta = (
            f"{self.tr('generated')}: {now} · {self.tr('source')}: {rep.source} · "
            f"{self.tr('rows')}: {rep.rows_read:,} / {rep.rows_used:,} · "
            f"{self.tr('excluded')}: {excl}"
        )
        return (
            f"<!DOCTYPE html><html lang='{lang_attr}'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>{escape(title)}</h1><p class='meta'>{escape(meta)}</p>{notes_html}"
            + "".join(self.sections)
            + "</main></body></html>"
        )


def build_report(
    tx: Transactions, options: ReportOptions | None = None, progress: Progress | None = None
) -> str:
    """The report as one HTML string.  Sections that cannot be computed on these data
    (e.g. a holdout on too short a history) say why instead of failing the report."""
    opts = options or ReportOptions()
    if opts.lang not in ("en", "zh"):
        raise AnalyticsError("report language must be 'en' or 'zh'")
    return _Builder(tx, opts, progress).run()


def write_report(
    tx: Transactions,
    path: str | Path,
    options: ReportOptions | None = None,
    progress: Progress | None = None,
) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(tx, options, progress), encoding="utf-8")
    return out
