"""Coupons: pure rules (no database, no web).

Codes
-----
* ``ALPHABET`` leaves out the look-alike characters ``0 O 1 I L`` (and lower case: codes
  are upper-cased on input, spaces and hyphens dropped). A chosen alphabet must be a
  subset of it with at least 16 characters.
* A generated code is ``prefix + length random characters``; the random part must carry at
  least ``MIN_BITS`` (40) bits (``length * log2(len(alphabet))``).
* A batch is feasible when, after it, the pattern's codes in use stay below
  ``1 / SPARSITY`` of the pattern's space: a guess then hits a live code with probability
  below one in a million, and generation rarely meets a collision.

Applying codes to a basket (:func:`apply`)
-------------------------------------------
1. The same code twice: the later copies are ``duplicate_code``.
2. The codes are taken in the defined order ``(priority, template, code)`` — never in the
   order they arrived, so every permutation of the same codes gives the same result.
3. Each code, in that order: a reason found by the service (unknown, expired, used …)
   stops it; then the template's store, channel, ``when:`` condition, eligible lines and
   minimum spend (on the eligible lines' net before any coupon); then stacking against
   the codes already accepted (``exclusive``: no code of another template; otherwise each
   template's ``group`` must be in the other's ``stacks_with``), then the template's
   ``max_per_order``, its total and per-member uses left.
4. Its discount is computed on what the lines still cost after the codes accepted before
   it (so the sum never exceeds the basket and no line goes below zero), and must be > 0
   and within the template's budget left; the budget and counters left are then reduced.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from loyalist.kit import conditions
from loyalist.programme.domain import allocate_proportionally

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LOOK_ALIKE = frozenset("0O1IL")
MIN_BITS = 40
SPARSITY = 1_000_000
MAX_CODE_LENGTH = 32
MIN_ALPHABET = 16
SHIPPING_CATEGORY = "shipping"
MAX_CODES_PER_ORDER = 10


class Kind(StrEnum):
    AMOUNT_OFF = "amount_off"
    PERCENT_OFF = "percent_off"
    FREE_ITEM = "free_item"
    FREE_SHIPPING = "free_shipping"


# Stable reason codes (the API answers them; docs/coupons.md lists them).
UNKNOWN = "unknown_code"
INACTIVE = "template_inactive"
NOT_STARTED = "not_started"
EXPIRED = "expired"
VOIDED = "voided"
NOT_YOURS = "not_yours"
MEMBER_REQUIRED = "member_required"
USED_UP = "used_up"
MEMBER_LIMIT = "member_limit"
TOTAL_LIMIT = "total_limit"
BUDGET = "budget_exhausted"
STORE = "store_not_eligible"
CHANNEL = "channel_not_eligible"
CONDITION = "condition_not_met"
NO_LINES = "no_eligible_lines"
MIN_SPEND = "min_spend_not_met"
NOT_STACKABLE = "not_stackable"
TOO_MANY = "too_many_of_template"
NO_DISCOUNT = "no_discount"
DUPLICATE = "duplicate_code"

REASONS = (
    UNKNOWN,
    INACTIVE,
    NOT_STARTED,
    EXPIRED,
    VOIDED,
    NOT_YOURS,
    MEMBER_REQUIRED,
    USED_UP,
    MEMBER_LIMIT,
    TOTAL_LIMIT,
    BUDGET,
    STORE,
    CHANNEL,
    CONDITION,
    NO_LINES,
    MIN_SPEND,
    NOT_STACKABLE,
    TOO_MANY,
    NO_DISCOUNT,
    DUPLICATE,
)

# Reasons that are conflicts of concurrent use (409 on an order), not bad input (422).
CONFLICTS = frozenset({USED_UP, MEMBER_LIMIT, TOTAL_LIMIT, BUDGET})


# --------------------------------------------------------------------------- codes


def normalise(code: str) -> str:
    """The code as stored: upper case, without spaces and hyphens."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def randomness_bits(alphabet_size: int, length: int) -> float:
    return length * math.log2(alphabet_size) if alphabet_size > 1 else 0.0


@dataclass(frozen=True, slots=True)
class PatternProblem:
    field: str
    message: str
    code: str


def check_pattern(
    prefix: str, length: int, alphabet: str, count: int, existing: int = 0
) -> list[PatternProblem]:
    """Why ``count`` more codes ``prefix + length × alphabet`` cannot be made (empty: they
    can). ``existing`` codes of the same pattern count against its space."""
    out: list[PatternProblem] = []
    if len(set(alphabet)) != len(alphabet):
        out.append(PatternProblem("alphabet", "characters repeat", "invalid"))
    bad = sorted(set(alphabet) - set(ALPHABET))
    if bad:
        out.append(
            PatternProblem(
                "alphabet", f"{''.join(bad)} not allowed (look-alikes or not A-Z 2-9)", "look_alike"
            )
        )
    if len(set(alphabet)) < MIN_ALPHABET:
        out.append(
            PatternProblem("alphabet", f"needs at least {MIN_ALPHABET} characters", "too_short")
        )
    if any(ch not in ALPHABET for ch in prefix):
        out.append(PatternProblem("prefix", f"use only {ALPHABET}", "look_alike"))
    if len(prefix) + length > MAX_CODE_LENGTH:
        out.append(
            PatternProblem("length", f"prefix + length must be <= {MAX_CODE_LENGTH}", "too_long")
        )
    if out:
        return out
    bits = randomness_bits(len(alphabet), length)
    if bits < MIN_BITS:
        out.append(
            PatternProblem(
                "length",
                f"{length} × {len(alphabet)} characters give {bits:.1f} bits; at least "
                f"{MIN_BITS} are needed",
                "too_little_randomness",
            )
        )
        return out
    most = max_codes(length, len(alphabet))
    if existing + count > most:
        out.append(
            PatternProblem(
                "count",
                f"the pattern allows at most {most} codes (1 in {SPARSITY} of its space); "
                f"{existing} exist",
                "batch_infeasible",
            )
        )
    return out


def max_codes(length: int, alphabet_size: int) -> int:
    return int(alphabet_size**length // SPARSITY)


def generate(
    prefix: str, length: int, alphabet: str, choice: Callable[[str], str] = secrets.choice
) -> str:
    return prefix + "".join(choice(alphabet) for _ in range(length))


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Rules:
    """A template's rules (validated by ``coupon.schemas.TemplateRules``)."""

    kind: Kind
    amount_minor: int = 0  # amount_off
    basis_points: int = 0  # percent_off: 1250 = 12.5 % off (8.75 折)
    cap_minor: int | None = None  # percent_off / free_shipping: at most this much off
    free_quantity: int = 1  # free_item: units of the cheapest eligible line
    min_spend_minor: int = 0
    skus: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    when: conditions.Condition | None = None
    priority: int = 100
    exclusive: bool = False
    group: str = "general"
    stacks_with: tuple[str, ...] = ()
    max_per_order: int = 1
    restore_on_return: bool = True


@dataclass(frozen=True, slots=True)
class Line:
    line_no: int
    sku: str
    category: str | None
    quantity: int
    unit_price_minor: int
    discount_minor: int = 0

    @property
    def net_minor(self) -> int:
        return self.quantity * self.unit_price_minor - self.discount_minor


@dataclass(frozen=True, slots=True)
class Basket:
    lines: tuple[Line, ...]
    store: str
    channel: str


@dataclass(frozen=True, slots=True)
class Left:
    """What a template still allows: uses in total, uses for this member, budget (None:
    unlimited)."""

    uses: int | None = None
    member_uses: int | None = None
    budget_minor: int | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    code: str
    template: str  # template code
    rules: Rules | None  # None: unknown code
    blocked: str | None = None  # a reason the service found (unknown, expired, used …)
    left: Left = field(default_factory=Left)


@dataclass(frozen=True, slots=True)
class Applied:
    code: str
    template: str | None
    valid: bool
    reason: str | None
    discount_minor: int
    lines: Mapping[int, int]  # line_no -> discount


@dataclass(frozen=True, slots=True)
class Outcome:
    results: tuple[Applied, ...]  # in the order the codes were given
    discount_minor: int
    line_discounts: Mapping[int, int]

    @property
    def valid(self) -> tuple[Applied, ...]:
        return tuple(r for r in self.results if r.valid)

    @property
    def refused(self) -> tuple[Applied, ...]:
        return tuple(r for r in self.results if not r.valid)


def eligible_lines(rules: Rules, basket: Basket) -> list[Line]:
    if rules.kind is Kind.FREE_SHIPPING:
        return [ln for ln in basket.lines if ln.category == SHIPPING_CATEGORY]
    out = []
    for ln in basket.lines:
        if ln.category == SHIPPING_CATEGORY:
            continue
        if (rules.skus or rules.categories) and not (
            ln.sku in rules.skus or (ln.category is not None and ln.category in rules.categories)
        ):
            continue
        out.append(ln)
    return out


def static_reason(rules: Rules, basket: Basket, facts: Mapping[str, Any]) -> str | None:
    """Why the template does not apply to this basket at all (None: it may)."""
    if rules.stores and basket.store not in rules.stores:
        return STORE
    if rules.channels and basket.channel not in rules.channels:
        return CHANNEL
    if rules.when is not None and not conditions.evaluate(rules.when, facts):
        return CONDITION
    lines = eligible_lines(rules, basket)
    if not lines:
        return NO_LINES
    if sum(ln.net_minor for ln in lines) < rules.min_spend_minor:
        return MIN_SPEND
    return None


def discount(rules: Rules, lines: Sequence[Line], remaining: Mapping[int, int]) -> dict[int, int]:
    """The discount per eligible line, on what the lines still cost (``remaining``)."""
    left = [(ln, remaining[ln.line_no]) for ln in lines if remaining[ln.line_no] > 0]
    if not left:
        return {}
    total_left = sum(r for _ln, r in left)
    if rules.kind is Kind.FREE_ITEM:
        ln, rem = min(left, key=lambda x: (x[0].unit_price_minor, x[0].line_no))
        off = min(ln.unit_price_minor * min(rules.free_quantity, ln.quantity), rem)
        return {ln.line_no: off} if off > 0 else {}
    if rules.kind is Kind.AMOUNT_OFF:
        off = min(rules.amount_minor, total_left)
    elif rules.kind is Kind.PERCENT_OFF:
        off = total_left * rules.basis_points // 10_000
    else:  # free shipping
        off = total_left
    if rules.cap_minor is not None:
        off = min(off, rules.cap_minor)
    shares = allocate_proportionally(off, [r for _ln, r in left])
    return {ln.line_no: s for (ln, _r), s in zip(left, shares, strict=True) if s > 0}


def _compatible(a: Candidate, b: Candidate) -> bool:
    assert a.rules is not None and b.rules is not None
    if a.template == b.template:
        return True  # the same template: max_per_order decides
    if a.rules.exclusive or b.rules.exclusive:
        return False
    return a.rules.group in b.rules.stacks_with and b.rules.group in a.rules.stacks_with


def _sort_key(c: Candidate) -> tuple[int, str, str]:
    return (c.rules.priority if c.rules else 10**9, c.template, c.code)


def apply(basket: Basket, candidates: Sequence[Candidate], facts: Mapping[str, Any]) -> Outcome:
    """Which codes apply to ``basket`` and the discount of each, per line (module doc)."""
    first: dict[str, int] = {}
    for i, c in enumerate(candidates):
        first.setdefault(c.code, i)
    unique = sorted((c for i, c in enumerate(candidates) if first[c.code] == i), key=_sort_key)
    remaining = {ln.line_no: ln.net_minor for ln in basket.lines}
    left: dict[str, Left] = {}
    accepted: list[Candidate] = []
    done: dict[str, Applied] = {}

    def refuse(c: Candidate, reason: str) -> None:
        done[c.code] = Applied(c.code, c.template or None, False, reason, 0, {})

    for c in unique:
        if c.blocked is not None or c.rules is None:
            refuse(c, c.blocked or UNKNOWN)
            continue
        rules = c.rules
        reason = static_reason(rules, basket, facts)
        if reason is not None:
            refuse(c, reason)
            continue
        if not all(_compatible(c, a) for a in accepted):
            refuse(c, NOT_STACKABLE)
            continue
        if sum(1 for a in accepted if a.template == c.template) >= rules.max_per_order:
            refuse(c, TOO_MANY)
            continue
        lt = left.setdefault(c.template, c.left)
        if lt.uses is not None and lt.uses <= 0:
            refuse(c, TOTAL_LIMIT)
            continue
        if lt.member_uses is not None and lt.member_uses <= 0:
            refuse(c, MEMBER_LIMIT)
            continue
        off = discount(rules, eligible_lines(rules, basket), remaining)
        total = sum(off.values())
        if total <= 0:
            refuse(c, NO_DISCOUNT)
            continue
        if lt.budget_minor is not None and total > lt.budget_minor:
            refuse(c, BUDGET)
            continue
        for no, d in off.items():
            remaining[no] -= d
        left[c.template] = replace(
            lt,
            uses=None if lt.uses is None else lt.uses - 1,
            member_uses=None if lt.member_uses is None else lt.member_uses - 1,
            budget_minor=None if lt.budget_minor is None else lt.budget_minor - total,
        )
        accepted.append(c)
        done[c.code] = Applied(c.code, c.template, True, None, total, dict(sorted(off.items())))

    results = []
    for i, c in enumerate(candidates):
        if first[c.code] != i:
            results.append(Applied(c.code, c.template or None, False, DUPLICATE, 0, {}))
        else:
            results.append(done[c.code])
    per_line = {
        ln.line_no: ln.net_minor - remaining[ln.line_no]
        for ln in basket.lines
        if ln.net_minor != remaining[ln.line_no]
    }
    return Outcome(tuple(results), sum(per_line.values()), per_line)
