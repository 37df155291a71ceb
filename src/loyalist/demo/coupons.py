"""Coupons in the demo (issue 12): a welcome coupon for every new member (many use it on
an early order, some let it expire), a member-day coupon for everyone at the end, and a
batch of printed flyer codes. Kept apart from build.py, which calls these few functions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from loyalist.coupon import service as coupons
from loyalist.coupon.schemas import BatchCreate, TemplateCreate
from loyalist.kit.actor import Actor
from loyalist.models import Member

WELCOME = "welcome-5"
WELCOME_CATEGORIES = ("coffee", "bakery")
WELCOME_OFF, WELCOME_MIN = 500, 3000

TEMPLATES: list[dict[str, Any]] = [
    {
        "code": WELCOME,
        "name": "新会员专享 满30减5",
        "name_en": "Welcome: ¥5 off ¥30",
        "kind": "amount_off",
        "amount_minor": WELCOME_OFF,
        "min_spend_minor": WELCOME_MIN,
        "categories": list(WELCOME_CATEGORIES),
        "valid_days": 30,
        "limit_per_member": 1,
        "group": "welcome",
        "stacks_with": ["shipping"],
    },
    {
        "code": "member-day-10",
        "name": "会员日 满60减10",
        "name_en": "Member day: ¥10 off ¥60",
        "kind": "amount_off",
        "amount_minor": 1000,
        "min_spend_minor": 6000,
        "when": {"eq": {"time.weekday": "wed"}},
        "valid_days": 60,
        "limit_per_member": 2,
        "budget_minor": 2_000_000,
        "priority": 50,
    },
    {
        "code": "beans-88",
        "name": "咖啡豆 88 折（最高减 30 元）",
        "name_en": "Coffee beans 12% off (up to ¥30)",
        "kind": "percent_off",
        "basis_points": 1200,
        "cap_minor": 3000,
        "categories": ["coffee_beans"],
        "valid_days": 90,
    },
    {
        "code": "free-tart",
        "name": "买咖啡送蛋挞",
        "name_en": "A free egg tart with your coffee",
        "kind": "free_item",
        "skus": ["EGG-TART"],
        "when": {"contains": {"order.categories": "coffee"}},
        "exclusive": True,
        "limit_total": 5000,
    },
]


def setup(s: Session, actor: Actor) -> None:
    for t in TEMPLATES:
        coupons.create_template(s, actor, TemplateCreate.model_validate(t))


def welcome(s: Session, actor: Actor, member: Member) -> str:
    _created, row = coupons.issue(
        s, WELCOME, member, source="api", issue_key=f"demo:welcome:{member.id}", actor=actor
    )
    return row.code


def welcome_discount(lines: Iterable[tuple[str | None, int]]) -> int:
    """What the welcome coupon takes off a basket of (category, net) lines (0: not enough)."""
    eligible = sum(net for cat, net in lines if cat in WELCOME_CATEGORIES)
    return WELCOME_OFF if eligible >= WELCOME_MIN else 0


def finish(s: Session, actor: Actor, members: Iterable[Member]) -> None:
    """At the end of the history: a member-day coupon each, and printed flyer codes."""
    for m in members:
        coupons.issue(
            s, "member-day-10", m, source="api", issue_key=f"demo:member-day:{m.id}", actor=actor
        )
    coupons.create_batch(
        s,
        actor,
        BatchCreate.model_validate(
            {
                "external_id": "flyers-free-tart",
                "template": "free-tart",
                "count": 200,
                "prefix": "TART",
            }
        ),
    )
