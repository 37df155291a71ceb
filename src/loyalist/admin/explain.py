"""Plain-words sentences for what happened to a member (the member 360 timeline)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loyalist.admin import labels
from loyalist.admin.web import Fmt
from loyalist.kit.conditions import Explanation
from loyalist.models import LedgerEntry, Order, OutboxEvent, Redemption, TierChange
from loyalist.programme.schemas import Match, Programme


@dataclass(frozen=True)
class Item:
    at: datetime
    kind: str  # order | ledger | redemption | tier | event
    text: str
    link: str | None = None
    points: int | None = None


@dataclass(frozen=True)
class Refs:
    """What ledger entries point at, in words: order numbers, returns, rewards."""

    orders: dict[str, str] = field(default_factory=dict)  # order id -> external id
    returns: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (return, order)
    redeemed: dict[int, str] = field(default_factory=dict)  # debit entry id -> reward name
    redemptions: dict[str, str] = field(default_factory=dict)  # redemption id -> reward name


def ledger_text(e: LedgerEntry, _: Callable[[str], str], fmt: Fmt, refs: Refs | None = None) -> str:
    refs = refs or Refs()
    pts = e.delta_available + e.delta_pending
    n = fmt.num(abs(pts) or abs(e.delta_debt))
    src = e.source_id or ""
    order = refs.orders.get(src, src)
    if e.kind == "earn" and e.source_type == "action":  # the award_points action
        return _("Awarded %(n)s points: %(why)s") % {"n": n, "why": e.reason or ""}
    if e.kind == "earn":
        if e.delta_pending:
            return _(
                "Earned %(n)s points from order %(src)s (pending until the return window ends)"
            ) % {"n": n, "src": order}
        return _("Earned %(n)s points from order %(src)s") % {"n": n, "src": order}
    if e.kind == "activate":
        return _("%(n)s pending points became available") % {"n": fmt.num(e.delta_available)}
    if e.kind == "redeem":
        if e.source_type == "order":
            return _("Paid %(n)s points towards order %(src)s") % {"n": n, "src": order}
        if e.id in refs.redeemed:
            return _("Spent %(n)s points on %(reward)s") % {"n": n, "reward": refs.redeemed[e.id]}
        return _("Spent %(n)s points (%(why)s)") % {"n": n, "why": e.reason or e.source_type or ""}
    if e.kind == "expire":
        return _("%(n)s points expired") % {"n": n}
    if e.kind == "clawback":
        if src in refs.returns:
            ret, of = refs.returns[src]
            return _("%(n)s points taken back: return %(ret)s of order %(order)s") % {
                "n": n,
                "ret": ret,
                "order": of,
            }
        return _("%(n)s points taken back after a return (%(why)s)") % {
            "n": n,
            "why": e.reason or "",
        }
    if e.kind == "reversal":
        if e.source_type == "redemption" and src in refs.redemptions:
            text = _("%(n)s points given back: redemption of %(reward)s cancelled") % {
                "n": n,
                "reward": refs.redemptions[src],
            }
            return text + (f" — {e.reason}" if e.reason else "")
        if e.source_type == "return" and src in refs.returns:
            ret, of = refs.returns[src]
            return _("%(n)s points paid on order %(order)s given back (return %(ret)s)") % {
                "n": n,
                "ret": ret,
                "order": of,
            }
        return _("%(n)s points restored (%(why)s)") % {"n": n, "why": e.reason or ""}
    if e.kind == "adjust":
        sign = "+" if pts > 0 else "−"
        text = _("Staff adjustment by %(who)s: %(sign)s%(n)s points — %(why)s") % {
            "who": (e.actor or "").removeprefix("user:"),
            "sign": sign,
            "n": n,
            "why": e.reason or "",
        }
        approver = (e.details or {}).get("approved_by")
        if approver:
            text += " " + _("(approved by %(who)s)") % {"who": str(approver).removeprefix("user:")}
        return text
    return f"{e.kind}: {pts:+d}"


def timeline(
    orders: list[Order],
    entries: list[LedgerEntry],
    redemptions: list[tuple[Redemption, str]],
    tiers: list[TierChange],
    events: list[OutboxEvent],
    tier_names: dict[str, str],
    _: Callable[[str], str],
    fmt: Fmt,
    refs: Refs | None = None,
) -> list[Item]:
    items: list[Item] = []
    for o in orders:
        items.append(
            Item(
                o.occurred_at,
                "order",
                _("Bought for %(amount)s in order %(no)s and earned %(points)s points")
                % {
                    "amount": fmt.money(o.amount_paid_minor, short=False),
                    "no": o.external_id,
                    "points": fmt.num(o.points_earned),
                },
                f"/admin/orders/{o.id}",
                o.points_earned or None,
            )
        )
    for e in entries:
        items.append(
            Item(
                e.occurred_at,
                "ledger",
                ledger_text(e, _, fmt, refs),
                None,
                e.delta_available + e.delta_pending,
            )
        )
    for r, reward_name in redemptions:
        text = _("Redeemed %(q)s × %(reward)s for %(points)s points") % {
            "q": r.quantity,
            "reward": reward_name,
            "points": fmt.num(r.points),
        }
        if r.status == "cancelled":
            text += " — " + _("cancelled")
        link = "/admin/redemptions?member=" + str(r.member_id)
        items.append(Item(r.created_at, "redemption", text, link, -r.points))
    for t in tiers:
        to = tier_names.get(t.to_tier, t.to_tier)
        frm = tier_names.get(t.from_tier or "", t.from_tier or "")
        if t.reason == "join":
            text = _("Joined the programme as %(tier)s") % {"tier": to}
        elif t.reason == "upgrade":
            text = _("Upgraded from %(a)s to %(b)s") % {"a": frm, "b": to}
        elif t.reason == "downgrade":
            text = _("Moved down from %(a)s to %(b)s") % {"a": frm, "b": to}
        else:
            text = _("Tier re-evaluated: %(a)s → %(b)s") % {"a": frm, "b": to}
        items.append(Item(t.occurred_at, "tier", text))
    for ev in events:
        items.append(Item(ev.occurred_at, "event", event_text(ev, _, fmt)))
    items.sort(key=lambda i: i.at, reverse=True)
    return items


# What an event records, in words. An event is a fact recorded by Loyalist, not a message
# delivered: ``points.expiring`` says that points come due (journeys, webhooks or a channel
# may act on it), so its line never claims a reminder was sent (issue 10, item 5).
_EVENT_WORDS = {
    "member.created": "Member record created",
    "member.updated": "Profile changed",
    "points.expiring": "Points expiring soon (expiry notice recorded)",
    "tier.changed": "Tier changed",
}


def event_text(
    ev: OutboxEvent,
    _: Callable[[str], str],
    fmt: Fmt | None = None,
    field_label: Callable[[str], str] | None = None,
) -> str:
    words = _EVENT_WORDS.get(ev.type)
    payload: dict[str, Any] = ev.payload or {}
    if ev.type == "points.expiring" and fmt is not None and payload.get("expires_at"):
        try:
            at = datetime.fromisoformat(str(payload["expires_at"]))
        except ValueError:
            at = None
        if at is not None:
            return _("Expiry notice recorded: %(n)s points expire after %(d)s") % {
                "n": fmt.num(int(payload.get("points") or 0)),
                "d": fmt.last_day(at),
            }
    if words:
        base = _(words)
        if ev.type == "member.updated" and payload.get("fields"):
            label = field_label or (lambda f: labels.field(f, _))
            base = _("%(what)s: %(fields)s") % {
                "what": base,
                "fields": _(", ").join(label(str(f)) for f in payload["fields"]),
            }
        return base
    return _("Event %(type)s") % {"type": ev.type}


def breakdown_label(rule: str, names: dict[str, str], _: Callable[[str], str]) -> str:
    """A breakdown component in words: what kind of rule, and its name in the programme."""
    kind, _sep, code = rule.partition(":")
    kinds = {
        "base": _("Base points"),
        "rule": _("Earning rule"),
        "exclusion": _("Excluded"),
        "campaign": _("Campaign"),
        "campaign_bonus": _("Campaign bonus"),
        "tier": _("Tier multiplier"),
        "cap": _("Cap"),
        "rounding": _("Rounding"),
    }
    caps = {"per_order": _("per order"), "per_day": _("per day"), "per_member": _("per member")}
    label = kinds.get(kind, kind)
    if kind == "cap":
        return f"{label} · {caps.get(code, code)}"
    if code:
        name = names.get(f"{'rule' if kind == 'exclusion' else kind.split('_')[0]}:{code}")
        return f"{label} · {name or code}"
    return label


# The engine explains each breakdown component in English (programme/domain.py); the
# console says the same in Chinese. Unknown shapes are shown as the engine wrote them.
_MATCH = re.compile(
    r"^on (?P<what>every line|.+?)"
    r"(?: in stores? (?P<stores>.+?))?(?: via channels? (?P<channels>.+))?$"
)
_DESCRIPTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?P<n>\d+) points? per (?P<unit>[\d.,]+ [A-Z]{3}) paid$"), "base"),
    (re.compile(r"^No points (?P<match>on .+)$"), "exclusion"),
    (re.compile(r"^(?P<m>[\d.]+)× (?P<match>on .+?)(?: \((?P<label>.*)\))?$"), "multiplier"),
    (re.compile(r"^(?P<n>\d+) bonus points? \((?P<label>.*)\)$"), "bonus"),
    (re.compile(r"^(?P<m>[\d.]+)× for tier (?P<tier>.+)$"), "tier"),
    (re.compile(r"^Capped at (?P<n>\d+) points per order$"), "cap_order"),
    (
        re.compile(r"^Capped at (?P<n>\d+) points per day \((?P<k>\d+) already earned today\)$"),
        "cap_day",
    ),
    (
        re.compile(r"^Capped at (?P<n>\d+) points per member \((?P<k>\d+) already earned\)$"),
        "cap_member",
    ),
]


def _zh_match(phrase: str) -> str:
    m = _MATCH.match(phrase)
    if m is None:
        return phrase
    what = m.group("what")
    if what == "every line":
        out = "全部商品"
    else:
        parts = []
        for part in what.split(" and "):
            word, _sep, items = part.partition(" ")
            label = {"category": "品类", "categories": "品类", "SKU": "SKU", "SKUs": "SKU"}
            parts.append(f"{label.get(word, word)} {items}")
        out = "、".join(parts)
    if m.group("stores"):
        out += f"，门店 {m.group('stores')}"
    if m.group("channels"):
        out += f"，渠道 {m.group('channels')}"
    return out


def describe(text: str, locale: str) -> str:
    """A breakdown component's explanation in the page's language."""
    if locale != "zh_CN":
        return text
    for pattern, kind in _DESCRIPTIONS:
        m = pattern.match(text)
        if m is None:
            continue
        g = m.groupdict()
        if kind == "base":
            unit = g["unit"]
            unit = "¥" + unit.removesuffix(" CNY") if unit.endswith(" CNY") else unit
            return f"每实付 {unit} 得 {g['n']} 积分"
        if kind == "exclusion":
            return f"不积分：{_zh_match(g['match'])}"
        if kind == "multiplier":
            label = f"（{g['label']}）" if g.get("label") else ""
            return f"{g['m']} 倍：{_zh_match(g['match'])}{label}"
        if kind == "bonus":
            return f"加赠 {g['n']} 积分（{g['label']}）"
        if kind == "tier":
            return f"等级 {g['tier']} {g['m']} 倍"
        if kind == "cap_order":
            return f"每单最多 {g['n']} 积分"
        if kind == "cap_day":
            return f"每日最多 {g['n']} 积分（今日已得 {g['k']}）"
        if kind == "cap_member":
            return f"每位会员最多 {g['n']} 积分（已得 {g['k']}）"
    return text


def _fmt_m(m: Any) -> str:
    text = format(m, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Names:
    """The programme's names for what a breakdown component refers to, in one language:
    tiers, rules and campaigns by code, category and channel labels, store names."""

    programme: Programme
    locale: str
    stores: dict[str, str] = field(default_factory=dict)  # store code -> name

    @property
    def zh(self) -> bool:
        return self.locale == "zh_CN"

    def named(self, thing: Any) -> str:
        name: str = thing.name if self.zh else (thing.name_en or thing.name)
        return name or thing.code

    def match(self, match: Match) -> str:
        zh = self.zh
        sep = "、" if zh else ", "
        parts: list[str] = []
        labels = self.programme.labels
        if match.categories:
            cats = sep.join(labels.category(c, self.locale) for c in match.categories)
            parts.append(f"品类 {cats}" if zh else f"category {cats}")
        if match.skus:
            parts.append(f"SKU {sep.join(match.skus)}")
        out = ("、" if zh else " and ").join(parts) or ("全部商品" if zh else "every line")
        if match.stores:
            st = sep.join(self.stores.get(c, c) for c in match.stores)
            out += f"，门店 {st}" if zh else f" in stores {st}"
        if match.channels:
            ch = sep.join(labels.channel(c, self.locale) for c in match.channels)
            out += f"，渠道 {ch}" if zh else f" via {ch}"
        return out if zh else f"on {out}"


def describe_component(rule: str, text: str, names: Names) -> str:
    """A breakdown component (``rule`` as the engine keys it, ``text`` its English
    description) in the page's language, with the programme's own names: a tier, rule or
    campaign by its name for that language (whatever characters the name holds), category
    and channel codes by their labels. Shapes not known here fall back to ``describe``."""
    kind, _sep, code = rule.partition(":")
    p = names.programme
    zh = names.zh
    try:
        if kind == "tier":
            tier = p.tiers.by_code(code)
            m = _fmt_m(tier.benefits.points_multiplier)
            return f"{names.named(tier)} {m} 倍" if zh else f"{m}× for tier {names.named(tier)}"
        if kind in ("rule", "exclusion"):
            r = next(r for r in p.earning.rules if r.code == code)
            if r.multiplier is None:
                return (
                    f"不积分：{names.match(r.match)}" if zh else f"No points {names.match(r.match)}"
                )
            m = _fmt_m(r.multiplier)
            return f"{m} 倍：{names.match(r.match)}" if zh else f"{m}× {names.match(r.match)}"
        if kind in ("campaign", "campaign_bonus"):
            c = next(c for c in p.earning.campaigns if c.code == code)
            label = names.named(c)
            if kind == "campaign_bonus":
                n = c.bonus_points
                if zh:
                    return f"加赠 {n} 积分（{label}）"
                return f"{n} bonus point{'s' if n != 1 else ''} ({label})"
            m = _fmt_m(c.multiplier)
            if zh:
                return f"{m} 倍：{names.match(c.match)}（{label}）"
            return f"{m}× {names.match(c.match)} ({label})"
    except (KeyError, StopIteration):
        pass
    return describe(text, names.locale)


# ``when:`` conditions (kit/conditions.py): each clause in words, zh-CN or en. The engine's
# own one-line form (Explanation.text) is the English fallback for fields not listed here.
_FIELDS_ZH = {
    "member.tier": "会员等级",
    "member.tags": "会员标签",
    "member.joined_days": "入会天数",
    "member.birthday_month": "生日月份",
    "member.points": "可用积分",
    "member.lifetime_spend_minor": "累计实付（分）",
    "member.store": "所属门店",
    "member.region": "所属区域",
    "member.rfm_segment": "RFM 分群",
    "member.rfm_score": "RFM 得分",
    "member.p_alive": "活跃概率（%）",
    "order.amount_minor": "订单实付（分）",
    "order.lines": "商品行数",
    "order.categories": "订单品类",
    "order.skus": "订单 SKU",
    "order.channel": "下单渠道",
    "order.store": "下单门店",
    "event.type": "事件类型",
    "time.weekday": "星期",
    "time.isoweekday": "星期（1–7）",
    "time.hour": "小时",
    "time.date": "日期",
    "time.month": "月份",
    "time.day": "日",
}
_FIELDS_EN = {
    "member.tier": "member tier",
    "member.tags": "member tags",
    "member.joined_days": "days since joining",
    "member.birthday_month": "birthday month",
    "member.points": "available points",
    "member.lifetime_spend_minor": "lifetime spend (fen)",
    "member.store": "home store",
    "member.region": "home region",
    "member.rfm_segment": "RFM segment",
    "member.rfm_score": "RFM score",
    "member.p_alive": "P(alive) (%)",
    "order.amount_minor": "amount paid (fen)",
    "order.lines": "order lines",
    "order.categories": "order categories",
    "order.skus": "order SKUs",
    "order.channel": "order channel",
    "order.store": "order store",
    "event.type": "event type",
    "time.weekday": "weekday",
    "time.isoweekday": "weekday (1–7)",
    "time.hour": "hour",
    "time.date": "date",
    "time.month": "month",
    "time.day": "day of month",
}
_OPS_ZH = {
    "eq": "等于",
    "ne": "不等于",
    "in": "属于",
    "gt": "大于",
    "gte": "不低于",
    "lt": "小于",
    "lte": "不高于",
    "between": "介于",
    "contains": "包含",
    "exists": "有值",
    "all": "以下条件全部满足",
    "any": "以下条件满足其一",
    "not": "以下条件不成立",
}
_OPS_EN = {
    "eq": "is",
    "ne": "is not",
    "in": "is one of",
    "gt": "is above",
    "gte": "is at least",
    "lt": "is below",
    "lte": "is at most",
    "between": "is between",
    "contains": "includes",
    "exists": "is known",
    "all": "all of these hold",
    "any": "at least one of these holds",
    "not": "this does not hold",
}
_WEEKDAYS_ZH = dict(
    zip(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "一二三四五六日", strict=True)
)


def _field_words(name: str, zh: bool) -> str:
    words = _FIELDS_ZH if zh else _FIELDS_EN
    if name in words:
        return words[name]
    if name.startswith("member.consent."):
        channel = name.removeprefix("member.consent.")
        return f"营销同意（{channel}）" if zh else f"marketing consent ({channel})"
    if name.startswith("event.fields."):
        key = name.removeprefix("event.fields.")
        return f"事件字段 {key}" if zh else f"event field {key}"
    return name


def _value_words(field_name: str, v: Any, zh: bool, tiers: dict[str, str]) -> str:
    if v is None:
        return "—"
    if isinstance(v, (list, tuple)):
        sep = "、" if zh else ", "
        inner = sep.join(_value_words(field_name, x, zh, tiers) for x in v)
        return inner if zh else f"[{inner}]"
    if isinstance(v, bool):
        return ("是" if v else "否") if zh else ("yes" if v else "no")
    if field_name == "member.tier":
        return tiers.get(str(v), str(v))
    if field_name == "time.weekday" and zh:
        return "周" + _WEEKDAYS_ZH.get(str(v), str(v))
    return v.isoformat() if hasattr(v, "isoformat") else str(v)


def clause_text(node: Explanation, locale: str, tiers: dict[str, str] | None = None) -> str:
    """One node of a condition explanation in the page's language.

    ``node`` is a ``kit.conditions.Explanation``; ``tiers`` maps tier codes to their names.
    """
    zh = locale == "zh_CN"
    ops = _OPS_ZH if zh else _OPS_EN
    if node.field is None:
        return ops.get(node.op, node.op)
    names = tiers or {}
    what = _field_words(node.field, zh)
    actual = _value_words(node.field, node.actual, zh, names)
    if node.op == "exists":
        return (
            f"{what}{ops['exists']}（实际：{actual}）"
            if zh
            else (f"{what} {ops['exists']} (actual: {actual})")
        )
    expected: Any = node.expected
    if node.op == "between":
        low = _value_words(node.field, expected[0], zh, names)
        high = _value_words(node.field, expected[1], zh, names)
        shown = f"{low} 至 {high}" if zh else f"{low} and {high}"
    else:
        shown = _value_words(node.field, expected, zh, names)
    if zh:
        return f"{what}{ops[node.op]} {shown}（实际：{actual}）"
    return f"{what} {ops[node.op]} {shown} (actual: {actual})"
