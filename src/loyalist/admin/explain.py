"""Plain-words sentences for what happened to a member (the member 360 timeline)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loyalist.admin.web import Fmt
from loyalist.models import LedgerEntry, Order, OutboxEvent, Redemption, TierChange


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
        items.append(Item(ev.occurred_at, "event", event_text(ev, _)))
    items.sort(key=lambda i: i.at, reverse=True)
    return items


_EVENT_WORDS = {
    "member.created": "Member record created",
    "member.updated": "Profile changed",
    "points.expiring": "Reminder sent: points expiring soon",
    "tier.changed": "Tier changed",
}


def event_text(ev: OutboxEvent, _: Callable[[str], str]) -> str:
    words = _EVENT_WORDS.get(ev.type)
    payload: dict[str, Any] = ev.payload or {}
    if words:
        base = _(words)
        if ev.type == "member.updated" and payload.get("fields"):
            base += ": " + ", ".join(str(f) for f in payload["fields"])
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
