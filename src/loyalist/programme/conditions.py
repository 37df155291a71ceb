"""The loyalty field catalogue for conditions, and the context an order gives them.

Pure (no database): the catalogue depends only on the programme's tier codes; the order
and time fields are computed from the order; member fields other than the tier come as
``facts`` that the order service loads only when a condition reads them.

Fields (see docs/operations.md, "Conditions"):

* ``member.tier`` (tier code, ordered as in the programme: ``gte: {member.tier: gold}`` is
  "gold or above"), ``member.tags`` (list), ``member.joined_days`` (whole days since
  joining), ``member.birthday_month`` (1..12), ``member.points`` (available balance),
  ``member.lifetime_spend_minor`` (paid on earlier orders), ``member.store`` /
  ``member.region`` (home store / its region code), ``member.consent.<channel>`` (bool),
  ``member.rfm_segment`` (the nightly RFM segment, e.g. ``Champions``), ``member.rfm_score``
  (its weighted R/F/M score, ``tiers.rfm_weights``) and ``member.p_alive`` (BG/NBD P(alive)
  in whole percent, 0..100) — absent until the nightly ``insights.rfm`` job has scored the
  member (a comparison on an absent field is false).
* ``order.amount_minor`` (cash paid), ``order.lines`` (number of lines),
  ``order.categories`` / ``order.skus`` (lists), ``order.channel``, ``order.store``.
* ``event.type`` and ``event.fields.<name>`` (for flows reacting to events).
* ``time.weekday`` (``mon`` .. ``sun``, ordered), ``time.isoweekday`` (1 = Monday .. 7 =
  Sunday), ``time.hour`` (0..23), ``time.date``, ``time.month``, ``time.day`` — all on the
  programme's wall clock (its time zone), at the moment the order occurred.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any

from loyalist.kit.conditions import Field, FieldSpec, FieldType

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Member fields that need a query beyond the member row (the order service loads them only
# when a condition of the programme reads them).
MEMBER_FACTS = (
    "member.tags",
    "member.joined_days",
    "member.birthday_month",
    "member.points",
    "member.lifetime_spend_minor",
    "member.store",
    "member.region",
    "member.consent",
    "member.rfm_segment",
    "member.rfm_score",
    "member.p_alive",
)

# Every RFM field comes from the one member_rfm row.
RFM_FACTS = ("member.rfm_segment", "member.rfm_score", "member.p_alive")


def catalogue(tier_codes: Iterable[str]) -> FieldSpec:
    """The fields a loyalty condition may read; tiers ordered lowest first."""
    tiers = tuple(tier_codes)
    i, s = FieldType.INT, FieldType.STR
    return FieldSpec(
        {
            "member.tier": Field(s, "tier code", values=tiers, ordered=True),
            "member.tags": Field(FieldType.LIST_STR, "tags"),
            "member.joined_days": Field(i, "days since joining", minimum=0),
            "member.birthday_month": Field(i, "birthday month", minimum=1, maximum=12),
            "member.points": Field(i, "available points"),
            "member.lifetime_spend_minor": Field(i, "paid on earlier orders", minimum=0),
            "member.store": Field(s, "home store code"),
            "member.region": Field(s, "home region code"),
            "member.consent.*": Field(FieldType.BOOL, "marketing consent per channel"),
            "member.rfm_segment": Field(s, "RFM segment (nightly)"),
            "member.rfm_score": Field(i, "weighted RFM score (nightly)", minimum=0),
            "member.p_alive": Field(i, "P(alive), whole percent", minimum=0, maximum=100),
            "order.amount_minor": Field(i, "cash paid, minor units", minimum=0),
            "order.lines": Field(i, "number of lines", minimum=0),
            "order.categories": Field(FieldType.LIST_STR, "categories of the lines"),
            "order.skus": Field(FieldType.LIST_STR, "SKUs of the lines"),
            "order.channel": Field(s, "channel"),
            "order.store": Field(s, "store code"),
            "event.type": Field(s, "event type"),
            "event.fields.*": Field(FieldType.ANY, "a field of the event payload"),
            "time.weekday": Field(s, "weekday, mon..sun", values=WEEKDAYS, ordered=True),
            "time.isoweekday": Field(i, "weekday, 1=Monday..7=Sunday", minimum=1, maximum=7),
            "time.hour": Field(i, "hour 0..23", minimum=0, maximum=23),
            "time.date": Field(FieldType.DATE, "local date"),
            "time.month": Field(i, "month 1..12", minimum=1, maximum=12),
            "time.day": Field(i, "day of month 1..31", minimum=1, maximum=31),
        }
    )


def time_facts(tz: tzinfo, at: datetime) -> dict[str, Any]:
    """The ``time.*`` fields of instant ``at`` on the wall clock of ``tz``."""
    local = at.astimezone(tz)
    return {
        "time.weekday": WEEKDAYS[local.weekday()],
        "time.isoweekday": local.isoweekday(),
        "time.hour": local.hour,
        "time.date": local.date(),
        "time.month": local.month,
        "time.day": local.day,
    }


def member_facts_needed(used: Iterable[str]) -> set[str]:
    """Which of :data:`MEMBER_FACTS` the fields ``used`` need (consent counts as one)."""
    out: set[str] = set()
    for name in used:
        for fact in MEMBER_FACTS:
            if name == fact or name.startswith(fact + "."):
                out.add(fact)
    return out
