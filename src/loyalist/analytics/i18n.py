"""Glossary and report strings in English and Simplified Chinese."""

from __future__ import annotations

import math
from typing import Literal

Lang = Literal["en", "zh"]
LANGS: tuple[str, ...] = ("en", "zh")

#: The zone whose calendar decides days, weeks and months (the programme's default zone).
DEFAULT_TIMEZONE = "Asia/Shanghai"

SEGMENT_NAMES_ZH: dict[str, str] = {
    "Champions": "重要价值客户",
    "Loyal": "忠诚客户",
    "Potential loyalist": "潜力客户",
    "New": "新客户",
    "Promising": "有望发展客户",
    "Need attention": "需关注客户",
    "About to sleep": "即将沉睡客户",
    "At risk": "重要挽留客户",
    "Can't lose them": "重要保持客户",
    "Hibernating": "沉睡客户",
    "Lost": "流失客户",
    "Not yet a customer": "尚未购买",
}

SEGMENT_ACTIONS: dict[str, tuple[str, str]] = {
    "Champions": ("Reward them; ask for reviews and referrals.", "给予回馈，邀请评价与推荐。"),
    "Loyal": ("Upsell higher tiers and members-only offers.", "推荐更高等级与会员专享权益。"),
    "Potential loyalist": ("Offer membership and tier progress.", "邀请入会，展示等级进度。"),
    "New": ("Onboard well; make the second purchase easy.", "做好新客引导，促成第二次购买。"),
    "Promising": ("Build awareness with small incentives.", "以小额激励培养品牌认知。"),
    "Need attention": (
        "Time-limited offers based on past purchases.",
        "基于历史购买推送限时优惠。",
    ),
    "About to sleep": ("Reconnect with popular products.", "用热门商品重新建立联系。"),
    "At risk": ("Personal win-back messages and renewals.", "个性化挽回触达与续卡提醒。"),
    "Can't lose them": ("Win them back: high-value outreach.", "高价值客户专项挽回。"),
    "Hibernating": ("Offer relevant products and specials.", "推荐相关商品与特价。"),
    "Lost": ("Try a last reactivation; otherwise let go.", "尝试最后一次唤醒，否则不再投入。"),
}

KPI_LABELS: dict[str, tuple[str, str]] = {
    "active_customers": ("Active customers", "活跃客户数"),
    "new_customers": ("New customers", "新客户数"),
    "orders": ("Orders", "订单数"),
    "revenue": ("Revenue", "销售额"),
    "revenue_share": ("Share of revenue", "销售额占比"),
    "repurchase_rate": ("Repurchase rate", "复购率"),
    "purchase_frequency": ("Purchase frequency", "购买频次"),
    "average_order_value": ("Average order value", "客单价"),
    "arpu": ("ARPU", "人均贡献 (ARPU)"),
    "churn_rate": ("Churn rate", "流失率"),
    "retention_rate": ("Retention rate", "留存率"),
    "top_10pct_revenue_share": ("Revenue share of top 10%", "前10%客户销售占比"),
    "top_20pct_revenue_share": ("Revenue share of top 20%", "前20%客户销售占比"),
}

KPI_DEFINITIONS: dict[str, tuple[str, str]] = {
    "active_customers": (
        "identified customers with at least one order in the period",
        "期内至少下单一次的可识别客户",
    ),
    "new_customers": (
        "active customers whose first order in the data is in the period",
        "首单发生在期内的活跃客户",
    ),
    "orders": (
        "orders placed in the period (anonymous orders included)",
        "期内订单数（含匿名订单）",
    ),
    "revenue": (
        "money paid in the period, net of refunds (anonymous orders included)",
        "期内实付金额，扣除退款（含匿名订单）",
    ),
    "revenue_share": (
        "this group's revenue / the revenue of all orders in the period",
        "本组销售额 / 期内全部订单销售额",
    ),
    "repurchase_rate": (
        "share of active customers who bought on two or more days in the period",
        "期内在两天及以上购买的活跃客户占比",
    ),
    "purchase_frequency": (
        "orders of active customers / active customers",
        "活跃客户订单数 / 活跃客户数",
    ),
    "average_order_value": ("revenue / orders", "销售额 / 订单数"),
    "arpu": (
        "revenue of active customers / active customers",
        "活跃客户销售额 / 活跃客户数",
    ),
    "churn_rate": (
        "share of customers active in the previous period of equal length who did not order "
        "in this period",
        "上一等长周期活跃、本期未再下单的客户占比",
    ),
    "retention_rate": ("1 - churn rate", "1 - 流失率"),
    "top_10pct_revenue_share": (
        "share of active customers' revenue paid by the 10% who spent most",
        "消费最高的10%活跃客户贡献的销售额占比",
    ),
    "top_20pct_revenue_share": (
        "share of active customers' revenue paid by the 20% who spent most",
        "消费最高的20%活跃客户贡献的销售额占比",
    ),
}

#: Display names of the fitted models (``FitResult.model`` -> name).
MODEL_NAMES: dict[str, str] = {
    "bgnbd": "BG/NBD",
    "pareto_nbd": "Pareto/NBD",
    "paretonbd": "Pareto/NBD",
    "gamma_gamma": "Gamma-Gamma",
}

RATE_KPIS = frozenset(
    {
        "revenue_share",
        "repurchase_rate",
        "churn_rate",
        "retention_rate",
        "top_10pct_revenue_share",
        "top_20pct_revenue_share",
    }
)
MONEY_KPIS = frozenset({"revenue", "average_order_value", "arpu"})

TEXT: dict[str, tuple[str, str]] = {
    "title": ("Customer analytics report", "客户分析报告"),
    "generated": ("Generated", "生成时间"),
    "source": ("Source", "数据来源"),
    "rows": ("Rows read / used", "读取 / 使用行数"),
    "excluded": ("Excluded rows", "排除行"),
    "none": ("none", "无"),
    "period": ("Period", "统计周期"),
    "kpis": ("Programme KPIs", "核心指标"),
    "kpi": ("KPI", "指标"),
    "all": ("All customers", "全部客户"),
    "members": ("Members", "会员"),
    "non_members": ("Non-members", "非会员"),
    "definition": ("Definition", "定义"),
    "rfm": ("RFM segments", "RFM 客户分群"),
    "segment": ("Segment", "分群"),
    "customers": ("Customers", "客户数"),
    "customer_share": ("Share of customers", "客户占比"),
    "revenue_share": ("Share of revenue", "销售额占比"),
    "recency_days": ("Mean days since last purchase", "平均距上次购买天数"),
    "mean_frequency": ("Mean orders", "平均订单数"),
    "mean_monetary": ("Mean spend", "平均消费额"),
    "action": ("Suggested action", "建议动作"),
    "cohorts": ("Cohort retention", "同期群留存"),
    "cohort": ("Cohort", "同期群"),
    "cohort_size": ("Size", "人数"),
    "period_index": ("Months since first purchase", "首购后月数"),
    "retention_curve": ("Retention by months since first purchase", "按首购后月数的留存率"),
    "clv": ("Lifetime value and churn risk", "客户终身价值与流失风险"),
    "model": ("Model", "模型"),
    "parameter": ("Parameter", "参数"),
    "estimate": ("Estimate", "估计值"),
    "std_error": ("Std. error", "标准误"),
    "log_likelihood": ("Log-likelihood", "对数似然"),
    "converged": ("Converged", "是否收敛"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    "total_clv": ("Total expected value over the horizon", "预测期内总预期价值"),
    "mean_clv": ("Mean CLV per customer", "人均 CLV"),
    "mean_alive": ("Mean probability alive", "平均存活概率"),
    "alive_hist": ("Customers by probability alive", "按存活概率分布的客户数"),
    "clv_deciles": ("CLV by decile (top first)", "CLV 十分位（由高到低）"),
    "validation": ("Holdout validation", "留出期验证"),
    "validation_note": (
        "Model fitted on the calibration period; mean repeat purchases per customer in the "
        "holdout period, by number of repeat purchases in calibration.",
        "模型在校准期拟合；按校准期复购次数分组，比较留出期人均复购次数的预测值与实际值。",
    ),
    "actual": ("Actual", "实际"),
    "predicted": ("Predicted", "预测"),
    "calibration_repeat": ("Repeat purchases in calibration", "校准期复购次数"),
    "total": ("Total", "合计"),
    "clusters": ("K-means segments", "K-means 聚类分群"),
    "silhouette": ("Silhouette by k", "各 k 的轮廓系数"),
    "chosen_k": ("Chosen k", "选定 k"),
    "transitions": ("Segment movement", "分群迁移"),
    "from_to": ("From \\ to", "原分群 \\ 现分群"),
    "horizon": ("Horizon", "预测期"),
    "days": ("days", "天"),
    "discount": ("Annual discount rate", "年折现率"),
    "margin": ("Margin", "毛利率"),
    "top_customers": ("Highest-value customers", "高价值客户"),
    "customer_id": ("Customer", "客户"),
    "p_alive": ("P(alive)", "存活概率"),
    "expected_purchases": ("Expected purchases", "预期购买次数"),
    "skipped": ("Skipped", "未生成"),
    "as_of": ("As of", "截至"),
    "calibration_to": ("Calibration: up to", "校准期：截至"),
    "holdout_period": ("holdout:", "留出期："),
    "parameters_se": ("Parameters (± standard error)", "参数（± 标准误）"),
    "repeat_purchases": ("Repeat purchases", "复购次数"),
    "cluster": ("Cluster", "群"),
    "median_recency": ("Median days since last purchase", "距上次购买天数中位数"),
    "median_orders": ("Median orders", "订单数中位数"),
    "median_spend": ("Median spend", "消费额中位数"),
    "median_clv": ("Median CLV", "CLV 中位数"),
    "silhouette_score": ("Silhouette", "轮廓系数"),
    "clusters_note": (
        "K-means on standardised features ({features}; counts and money on a log scale); "
        "k is the number of clusters with the highest silhouette.",
        "对标准化特征（{features}；次数与金额取对数）做 k-means 聚类；k 取轮廓系数最高的聚类数",
    ),
    "rfm_note": (
        "scores 1-5 by quintile (5 = most recent, most orders, most spend); segments from "
        "the recency score and the mean of the frequency and monetary scores.",
        "按五分位打 1-5 分（5 = 最近、最频繁、消费最多）；分群依据最近购买得分与频次、金额平均得分",
    ),
    "cohort_note": (
        "A cohort is the month of a customer's first purchase; the last month of data may be "
        "incomplete.",
        "同期群为客户首次购买的月份；数据的最后一个月可能不完整",
    ),
    "retention_table": (
        "Share of each cohort buying in each month since its first purchase",
        "各同期群在首购后各月的购买客户占比",
    ),
    "revenue_table": (
        "Cumulative revenue per cohort customer",
        "同期群人均累计销售额",
    ),
    "anonymous_note": (
        "{n} anonymous orders (no customer id) are counted in the order and revenue KPIs as "
        "non-member orders, not in RFM, cohorts, CLV or clusters.",
        "匿名订单 {n} 笔（无客户标识）：作为非会员订单计入订单与销售额指标，"
        "不计入 RFM、同期群、CLV 与聚类。",
    ),
    "returns_note": (
        "{n} partly returned orders are counted net of their refunds, on the order's date.",
        "部分退货订单 {n} 笔：按扣除退款后的净额计入下单日期。",
    ),
    "not_converged": (
        "the fit did not converge; treat these figures with caution",
        "拟合未收敛，以下数字仅供参考",
    ),
    "clv_not_finite": (
        "CLV could not be computed for {n} customers",
        "{n} 位客户的 CLV 无法计算",
    ),
    "no_repeat_calibration": (
        "no customer made a repeat purchase in the calibration period: nothing to validate",
        "校准期内没有客户复购，无法验证",
    ),
    # programme effect (issue 15 item 4)
    "effect": ("Programme effect: members vs comparable non-members", "会员效果：会员与可比非会员"),
    "effect_method": ("Method", "方法"),
    "effect_estimate": ("Extra spend per member in the period", "每位会员在统计周期内的增量消费"),
    "effect_ci": ("95% confidence interval", "95% 置信区间"),
    "effect_naive": (
        "Unadjusted difference (biased by selection)",
        "未调整差值（受自选择偏差影响）",
    ),
    "effect_counts": (
        "Members matched / non-members / members unmatched",
        "匹配会员 / 非会员 / 未匹配会员",
    ),
    "effect_matching": (
        "Exact matching on RFM cells at the end of the pre-period (the period before the KPI "
        "period); the average effect on members (cells weighted by their members).",
        "按统计周期之前的 RFM 分组精确匹配；会员平均处理效应（按各组会员数加权）。",
    ),
}


#: Reasons rows are excluded on reading (see ``LoadReport.excluded``).
EXCLUSION_REASONS: dict[str, tuple[str, str]] = {
    "zero amount": ("zero amount", "金额为零"),
    "fully returned (net amount zero)": (
        "fully returned (net amount zero)",
        "全额退货（净额为零）",
    ),
}


def exclusion_label(reason: str, lang: str) -> str:
    pair = EXCLUSION_REASONS.get(reason)
    return pair[idx(lang)] if pair else reason


def idx(lang: str) -> int:
    return 1 if lang == "zh" else 0


def t(key: str, lang: str) -> str:
    pair = TEXT.get(key)
    return pair[idx(lang)] if pair else key


def segment_label(name: str, lang: str) -> str:
    return SEGMENT_NAMES_ZH.get(name, name) if lang == "zh" else name


def kpi_label(name: str, lang: str) -> str:
    pair = KPI_LABELS.get(name)
    return pair[idx(lang)] if pair else name


def fmt_number(value: float, kind: str = "number", currency: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "money":
        return f"{currency}{value:,.2f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def fmt_kpi(name: str, value: float, currency: str = "") -> str:
    if name in RATE_KPIS:
        return fmt_number(value, "rate")
    if name in MONEY_KPIS:
        return fmt_number(value, "money", currency)
    return fmt_number(value)


def describe_cluster(row: dict[str, object], lang: str, currency: str = "") -> str:
    """A sentence about a cluster profile (medians of its features)."""
    n = int(row.get("customers", 0) or 0)  # type: ignore[call-overload]
    share = float(row.get("share", 0.0) or 0.0)  # type: ignore[arg-type]
    parts_en: list[str] = []
    parts_zh: list[str] = []
    if "recency_days" in row:
        d = float(row["recency_days"])  # type: ignore[arg-type]
        parts_en.append(f"last bought {d:.0f} days ago")
        parts_zh.append(f"上次购买在 {d:.0f} 天前")
    if "frequency" in row:
        f = float(row["frequency"])  # type: ignore[arg-type]
        parts_en.append(f"{f:.0f} order" + ("" if round(f) == 1 else "s"))
        parts_zh.append(f"{f:.0f} 笔订单")
    if "monetary" in row:
        m = float(row["monetary"])  # type: ignore[arg-type]
        parts_en.append(f"{currency}{m:,.0f} spent")
        parts_zh.append(f"累计消费 {currency}{m:,.0f}")
    if "clv" in row:
        c = float(row["clv"])  # type: ignore[arg-type]
        parts_en.append(f"expected value {currency}{c:,.0f}")
        parts_zh.append(f"预期价值 {currency}{c:,.0f}")
    cl = row.get("cluster")
    if lang == "zh":
        return (
            f"第 {cl} 群：{n:,} 位客户（{share * 100:.1f}%），典型客户" + "，".join(parts_zh) + "。"
        )
    return (
        f"Cluster {cl}: {n:,} customers ({share * 100:.1f}%); a typical one "
        + ", ".join(parts_en)
        + "."
    )
