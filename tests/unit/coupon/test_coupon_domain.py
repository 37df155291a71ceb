"""Pure coupon rules: discounts, stacking in a defined order (every permutation of the same
codes gives the same result), never below zero, and code patterns."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.coupon import domain
from loyalist.coupon.domain import Basket, Candidate, Kind, Left, Line, Rules


def basket(*lines: tuple[str, str | None, int, int], store: str = "sh1") -> Basket:
    return Basket(
        tuple(Line(i + 1, sku, cat, q, p) for i, (sku, cat, q, p) in enumerate(lines)),
        store,
        "pos",
    )


COFFEE = basket(
    ("LATTE", "coffee", 2, 3000), ("BEANS", "beans", 1, 8800), ("SHIP", "shipping", 1, 1000)
)


def cand(code: str, rules: Rules, template: str | None = None, **kw: Any) -> Candidate:
    return Candidate(code, template or code.lower(), rules, **kw)


def test_amount_off_spreads_over_eligible_lines_by_what_they_cost() -> None:
    out = domain.apply(COFFEE, [cand("A", Rules(Kind.AMOUNT_OFF, amount_minor=1480))], {})
    # 6000 and 8800 share 1480; shipping is never discounted by an amount-off coupon
    assert out.results[0].lines == {1: 600, 2: 880}
    assert out.discount_minor == 1480


def test_percent_off_with_a_cap_and_categories() -> None:
    r = Rules(Kind.PERCENT_OFF, basis_points=1250, categories=("beans",))
    assert domain.apply(COFFEE, [cand("P", r)], {}).results[0].lines == {2: 1100}
    capped = Rules(Kind.PERCENT_OFF, basis_points=1250, cap_minor=500)
    out = domain.apply(COFFEE, [cand("P", capped)], {})
    assert out.discount_minor == 500 and out.results[0].lines == {1: 203, 2: 297}


def test_free_item_is_the_cheapest_eligible_unit_and_free_shipping_the_shipping_lines() -> None:
    free = Rules(Kind.FREE_ITEM, categories=("coffee", "beans"))
    assert domain.apply(COFFEE, [cand("F", free)], {}).results[0].lines == {1: 3000}
    ship = Rules(Kind.FREE_SHIPPING)
    assert domain.apply(COFFEE, [cand("S", ship)], {}).results[0].lines == {3: 1000}
    no_ship = basket(("LATTE", "coffee", 1, 3000))
    assert domain.apply(no_ship, [cand("S", ship)], {}).results[0].reason == domain.NO_LINES


def test_reasons() -> None:
    r = Rules(Kind.AMOUNT_OFF, amount_minor=100)
    cases = [
        (Rules(Kind.AMOUNT_OFF, amount_minor=100, stores=("bj1",)), domain.STORE),
        (Rules(Kind.AMOUNT_OFF, amount_minor=100, channels=("app",)), domain.CHANNEL),
        (Rules(Kind.AMOUNT_OFF, amount_minor=100, min_spend_minor=20_000), domain.MIN_SPEND),
        (Rules(Kind.AMOUNT_OFF, amount_minor=100, skus=("TEA",)), domain.NO_LINES),
    ]
    for rules, reason in cases:
        assert domain.apply(COFFEE, [cand("X", rules)], {}).results[0].reason == reason
    assert domain.apply(COFFEE, [cand("X", r, blocked=domain.EXPIRED)], {}).results[0].reason == (
        domain.EXPIRED
    )
    assert domain.apply(COFFEE, [cand("X", r, left=Left(uses=0))], {}).results[0].reason == (
        domain.TOTAL_LIMIT
    )
    assert (
        domain.apply(COFFEE, [cand("X", r, left=Left(member_uses=0))], {}).results[0].reason
        == domain.MEMBER_LIMIT
    )
    assert (
        domain.apply(COFFEE, [cand("X", r, left=Left(budget_minor=99))], {}).results[0].reason
        == domain.BUDGET
    )
    unknown = domain.apply(COFFEE, [Candidate("NOPE", "", None, domain.UNKNOWN)], {})
    assert (unknown.results[0].reason, unknown.results[0].template) == (domain.UNKNOWN, None)


def test_when_condition_reads_the_facts() -> None:
    from loyalist.kit import conditions
    from loyalist.programme.conditions import catalogue

    when = conditions.parse({"eq": {"time.weekday": "wed"}}, catalogue(["base", "gold"]))
    r = Rules(Kind.AMOUNT_OFF, amount_minor=100, when=when)
    assert domain.apply(COFFEE, [cand("W", r)], {"time.weekday": "wed"}).results[0].valid
    assert domain.apply(COFFEE, [cand("W", r)], {"time.weekday": "thu"}).results[0].reason == (
        domain.CONDITION
    )


def test_stacking_exclusive_groups_and_max_per_order() -> None:
    excl = Rules(Kind.AMOUNT_OFF, amount_minor=500, exclusive=True, priority=1)
    store = Rules(Kind.AMOUNT_OFF, amount_minor=300, group="store", stacks_with=("shipping",))
    ship = Rules(Kind.FREE_SHIPPING, group="shipping", stacks_with=("store",))
    other = Rules(Kind.AMOUNT_OFF, amount_minor=200, group="brand", priority=200)
    out = domain.apply(COFFEE, [cand("S1", store), cand("X1", excl), cand("H1", ship)], {})
    # the exclusive one comes first (priority 1): nothing else of another template
    assert [(r.code, r.reason) for r in out.results] == [
        ("S1", domain.NOT_STACKABLE),
        ("X1", None),
        ("H1", domain.NOT_STACKABLE),
    ]
    out = domain.apply(COFFEE, [cand("S1", store), cand("H1", ship), cand("B1", other)], {})
    assert [r.reason for r in out.results] == [None, None, domain.NOT_STACKABLE]
    assert out.discount_minor == 1300
    two = domain.apply(COFFEE, [cand("S1", store, "s"), cand("S2", store, "s")], {})
    assert [r.reason for r in two.results] == [None, domain.TOO_MANY]
    dup = domain.apply(COFFEE, [cand("S1", store), cand("S1", store)], {})
    assert [r.reason for r in dup.results] == [None, domain.DUPLICATE]


# --------------------------------------------------------------------------- properties

KINDS = st.sampled_from(list(Kind))
GROUPS = st.sampled_from(["a", "b", "c"])


@st.composite
def rules_st(draw: st.DrawFn) -> Rules:
    kind = draw(KINDS)
    return Rules(
        kind=kind,
        amount_minor=draw(st.integers(1, 20_000)) if kind is Kind.AMOUNT_OFF else 0,
        basis_points=draw(st.integers(1, 10_000)) if kind is Kind.PERCENT_OFF else 0,
        cap_minor=draw(st.none() | st.integers(1, 5_000)),
        free_quantity=draw(st.integers(1, 3)),
        min_spend_minor=draw(st.sampled_from([0, 0, 5_000, 50_000])),
        categories=tuple(draw(st.sets(st.sampled_from(["coffee", "beans", "cake"]), max_size=2)))
        if kind is not Kind.FREE_ITEM
        else ("coffee", "cake"),
        priority=draw(st.integers(0, 3)),
        exclusive=draw(st.booleans()),
        group=draw(GROUPS),
        stacks_with=tuple(draw(st.sets(GROUPS))),
        max_per_order=draw(st.integers(1, 3)),
    )


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Basket, list[Candidate]]:
    n = draw(st.integers(1, 5))
    lines = [
        (
            f"S{i}",
            draw(st.sampled_from(["coffee", "beans", "cake", "shipping", None])),
            draw(st.integers(1, 4)),
            draw(st.integers(0, 20_000)),
        )
        for i in range(n)
    ]
    b = basket(*lines)
    templates = draw(st.lists(rules_st(), min_size=1, max_size=4))
    cands = []
    for j in range(draw(st.integers(1, 6))):
        t = draw(st.integers(0, len(templates) - 1))
        left = Left(
            uses=draw(st.none() | st.integers(0, 3)),
            member_uses=draw(st.none() | st.integers(0, 3)),
            budget_minor=draw(st.none() | st.integers(0, 10_000)),
        )
        code = draw(st.sampled_from([f"C{j}", "C0"]))  # sometimes a repeated code
        cands.append(Candidate(code, f"t{t}", templates[t], left=left))
    # a code belongs to one template; the limits left are the template's (one per template)
    first_code = {c.code: c for c in reversed(cands)}
    cands = [first_code[c.code] for c in cands]
    first_left = {c.template: c.left for c in reversed(cands)}
    cands = [Candidate(c.code, c.template, c.rules, left=first_left[c.template]) for c in cands]
    return b, cands


def _by_code(out: domain.Outcome) -> list[tuple[str, Any, Any, int, Any]]:
    return sorted(
        (r.code, r.valid, r.reason, r.discount_minor, tuple(sorted(r.lines.items())))
        for r in out.results
    )


@settings(max_examples=100, deadline=None)
@given(scenario(), st.randoms(use_true_random=False))
def test_every_permutation_gives_the_same_result(
    sc: tuple[Basket, list[Candidate]], rnd: random.Random
) -> None:
    b, cands = sc
    # a repeated code is the same candidate: permute distinct codes, duplicates follow
    base = domain.apply(b, cands, {})
    perms = (
        itertools.permutations(cands)
        if len(cands) <= 4
        else (rnd.sample(cands, len(cands)) for _ in range(24))
    )
    for p in perms:
        out = domain.apply(b, list(p), {})
        assert _by_code(out) == _by_code(base)
        assert out.discount_minor == base.discount_minor
        assert dict(out.line_discounts) == dict(base.line_discounts)


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_never_below_zero_and_within_limits(sc: tuple[Basket, list[Candidate]]) -> None:
    b, cands = sc
    out = domain.apply(b, cands, {})
    for ln in b.lines:
        assert 0 <= out.line_discounts.get(ln.line_no, 0) <= ln.net_minor
    assert out.discount_minor == sum(r.discount_minor for r in out.results)
    assert out.discount_minor <= sum(ln.net_minor for ln in b.lines)
    for r in out.results:
        assert r.valid == (r.reason is None)
        assert (r.discount_minor > 0) == r.valid
        assert sum(r.lines.values()) == r.discount_minor
    per_template: dict[str, list[int]] = {}
    for r in out.valid:
        assert r.template is not None
        per_template.setdefault(r.template, []).append(r.discount_minor)
    for c in cands:
        used = per_template.get(c.template, [])
        assert c.rules is not None
        assert len(used) <= c.rules.max_per_order
        if c.left.budget_minor is not None:
            assert sum(used) <= c.left.budget_minor
        if c.left.uses is not None:
            assert len(used) <= c.left.uses
    # accepted codes of different templates are compatible with each other
    valid = [c for c in cands if any(r.valid and r.code == c.code for r in out.results)]
    for a, z in itertools.combinations({c.code: c for c in valid}.values(), 2):
        if a.template != z.template:
            assert a.rules is not None and z.rules is not None
            assert not a.rules.exclusive and not z.rules.exclusive
            assert a.rules.group in z.rules.stacks_with and z.rules.group in a.rules.stacks_with


def test_code_patterns() -> None:
    assert set(domain.ALPHABET).isdisjoint(domain.LOOK_ALIKE)
    assert domain.normalise(" ab-c d ") == "ABCD"
    assert domain.check_pattern("", 9, domain.ALPHABET, 1000) == []
    assert math.isclose(domain.randomness_bits(31, 9), 44.59, abs_tol=0.01)
    weak = domain.check_pattern("", 8, domain.ALPHABET, 10)
    assert [p.code for p in weak] == ["too_little_randomness"]
    most = domain.max_codes(9, 31)
    assert most == 26_439_622
    assert [p.code for p in domain.check_pattern("", 9, domain.ALPHABET, 1, existing=most)] == [
        "batch_infeasible"
    ]
    assert domain.check_pattern("", 9, domain.ALPHABET, 1, existing=most - 1) == []
    bad = domain.check_pattern("O", 9, domain.ALPHABET + "0", 1)
    assert {p.code for p in bad} == {"look_alike"}
    assert {p.field for p in bad} == {"alphabet", "prefix"}
    code = domain.generate("VIP", 10, domain.ALPHABET)
    assert code.startswith("VIP") and len(code) == 13 and set(code[3:]) <= set(domain.ALPHABET)
