"""The condition language: parsing with paths, evaluation, explanation and its laws."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.kit.conditions import (
    All,
    AnyOf,
    Clause,
    Condition,
    ConditionError,
    Field,
    FieldSpec,
    FieldType,
    Not,
    evaluate,
    explain,
    fields_used,
    parse,
    resolve,
    to_data,
)
from loyalist.programme.conditions import catalogue, member_facts_needed, time_facts

SPEC = catalogue(["base", "silver", "gold", "platinum", "black"])


def problems(data: Any, spec: FieldSpec = SPEC) -> list[tuple[str, str]]:
    with pytest.raises(ConditionError) as info:
        parse(data, spec)
    return [(p.path, p.message) for p in info.value.problems]


# --------------------------------------------------------------------------- parsing


def test_parse_builds_the_tree_with_typed_values() -> None:
    cond = parse(
        {
            "all": [
                {"eq": {"time.weekday": "wed"}},
                {"gte": {"member.tier": "gold"}},
                {"between": {"time.date": ["2026-11-01", "2026-11-30"]}},
                {"not": {"contains": {"member.tags": "staff"}}},
                {"any": [{"exists": "member.birthday_month"}, {"in": {"order.channel": ["app"]}}]},
            ]
        },
        SPEC,
    )
    tiers = ("base", "silver", "gold", "platinum", "black")
    weekdays = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    assert cond == All(
        (
            Clause("eq", "time.weekday", "wed", weekdays),
            Clause("gte", "member.tier", "gold", tiers),
            Clause("between", "time.date", (dt.date(2026, 11, 1), dt.date(2026, 11, 30))),
            Not(Clause("contains", "member.tags", "staff")),
            AnyOf(
                (
                    Clause("exists", "member.birthday_month"),
                    Clause("in", "order.channel", ("app",)),
                )
            ),
        )
    )
    assert fields_used(cond) == {
        "time.weekday",
        "member.tier",
        "time.date",
        "member.tags",
        "member.birthday_month",
        "order.channel",
    }


def test_every_problem_is_reported_with_its_path() -> None:
    got = problems(
        {
            "all": [
                {"eq": {"member.tierr": "gold"}},
                {"gte": {"order.amount_minor": "100"}},
                {"contains": {"order.channel": "app"}},
                {"any": []},
                {"gte": {"member.tier": "diamond"}},
                {"between": {"time.hour": [20, 8]}},
                {"in": {"time.weekday": ["wed", "someday"]}},
                {"eq": {"time.hour": 24}},
                {"like": {"order.channel": "a%"}},
                {"eq": {"order.channel": "app"}, "ne": {"order.channel": "pos"}},
                {"eq": {"time.date": "2026-13-01"}},
                {"eq": {"member.consent.sms": "yes"}},
                "wed",
            ]
        }
    )
    assert got == [
        ("all.0.eq", "unknown field 'member.tierr'"),
        ("all.1.gte", "expected a int value, got str '100'"),
        (
            "all.2.contains",
            "operator 'contains' is not valid for order.channel (str); "
            "use one of: eq, ne, in, exists",
        ),
        ("all.3.any", "'any' needs at least one condition"),
        ("all.4.gte", "'diamond' is not one of: base, silver, gold, platinum, black"),
        ("all.5.between", "low 20 is above high 8"),
        ("all.6.in.1", "'someday' is not one of: mon, tue, wed, thu, fri, sat, sun"),
        ("all.7.eq", "24 is above the maximum 23"),
        (
            "all.8.like",
            "unknown operator 'like'; use all, any, not or one of: "
            "eq, ne, in, gt, gte, lt, lte, between, contains, exists",
        ),
        (
            "all.9",
            "a condition has exactly one key (all, any, not or an operator), got eq, ne",
        ),
        ("all.10.eq", "'2026-13-01' is not a date (YYYY-MM-DD)"),
        ("all.11.eq", "expected a bool value, got str 'yes'"),
        ("all.12", "expected a mapping like {all: [...]}, got str"),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], [("$", "expected a mapping like {all: [...]}, got list")]),
        ({"all": {"eq": {}}}, [("all", "expected a list of conditions, got mapping")]),
        ({"exists": 3}, [("exists", "expected a field name, got int")]),
        (
            {"in": {"order.channel": []}},
            [("in", "expected a non-empty list of values for order.channel")],
        ),
        ({"between": {"time.hour": [1]}}, [("between", "expected [low, high] for time.hour")]),
        (
            {"gt": {"member.tags": "x"}},
            [
                (
                    "gt",
                    "operator 'gt' is not valid for member.tags (list[str]); "
                    "use one of: contains, exists",
                )
            ],
        ),
        ({"eq": {"order.amount_minor": True}}, [("eq", "expected a int value, got bool True")]),
        ({"not": {"any": []}}, [("not.any", "'any' needs at least one condition")]),
        (
            {"gt": {"order.store": "s1"}},
            [
                (
                    "gt",
                    "operator 'gt' is not valid for order.store (str); "
                    "use one of: eq, ne, in, exists",
                )
            ],
        ),
    ],
)
def test_shape_problems(data: Any, expected: list[tuple[str, str]]) -> None:
    assert problems(data) == expected


def test_wildcard_fields_and_to_data_round_trip() -> None:
    data = {
        "any": [
            {"eq": {"member.consent.wechat": True}},
            {"eq": {"event.fields.score": 3}},
            {"between": {"time.date": ["2026-02-14", "2026-02-22"]}},
            {"exists": "event.type"},
        ]
    }
    cond = parse(data, SPEC)
    assert to_data(cond) == data
    assert parse(to_data(cond), SPEC) == cond
    assert problems({"eq": {"member.consent": True}}) == [("eq", "unknown field 'member.consent'")]


# --------------------------------------------------------------------------- evaluation

MEMBER_DAY = {
    "all": [
        {"eq": {"time.weekday": "wed"}},
        {"gte": {"member.tier": "gold"}},
        {"gte": {"order.amount_minor": 10000}},
    ]
}


def test_member_day_evaluates_and_explains_each_clause() -> None:
    cond = parse(MEMBER_DAY, SPEC)
    ctx = {"time.weekday": "wed", "member.tier": "silver", "order.amount_minor": 12000}
    assert evaluate(cond, ctx) is False
    ex = explain(cond, ctx)
    assert ex.passed is False
    assert [(c.path, c.op, c.field, c.expected, c.actual, c.passed) for c in ex.children] == [
        ("all.0", "eq", "time.weekday", "wed", "wed", True),
        ("all.1", "gte", "member.tier", "gold", "silver", False),
        ("all.2", "gte", "order.amount_minor", 10000, 12000, True),  # not hidden
    ]
    assert [c.text() for c in ex.children] == [
        "time.weekday eq wed (actual: wed)",
        "member.tier gte gold (actual: silver)",
        "order.amount_minor gte 10000 (actual: 12000)",
    ]
    for tier, ok in [("gold", True), ("platinum", True), ("black", True), ("base", False)]:
        assert evaluate(cond, {**ctx, "member.tier": tier}) is ok


@pytest.mark.parametrize(
    ("data", "ctx", "expected"),
    [
        ({"contains": {"member.tags": "vip"}}, {"member.tags": ["new", "vip"]}, True),
        ({"contains": {"member.tags": "vip"}}, {"member.tags": []}, False),
        ({"contains": {"member.tags": "vip"}}, {}, False),
        ({"exists": "member.birthday_month"}, {"member.birthday_month": 5}, True),
        ({"exists": "member.birthday_month"}, {"member.birthday_month": None}, False),
        ({"ne": {"order.channel": "pos"}}, {}, True),  # absent is not "pos"
        ({"eq": {"order.channel": "pos"}}, {}, False),
        ({"gt": {"order.amount_minor": 10000}}, {"order.amount_minor": 10000}, False),
        ({"gte": {"order.amount_minor": 10000}}, {"order.amount_minor": 10000}, True),
        ({"lt": {"time.hour": 9}}, {"time.hour": 8}, True),
        ({"lte": {"time.hour": 9}}, {"time.hour": 10}, False),
        ({"between": {"time.hour": [8, 10]}}, {"time.hour": 10}, True),
        ({"between": {"time.hour": [8, 10]}}, {"time.hour": 11}, False),
        ({"in": {"time.isoweekday": [6, 7]}}, {"time.isoweekday": 7}, True),
        ({"lt": {"member.tier": "gold"}}, {"member.tier": "silver"}, True),
        ({"lt": {"member.tier": "gold"}}, {"member.tier": "unknown"}, False),
        ({"gte": {"time.weekday": "sat"}}, {"time.weekday": "sun"}, True),
        ({"eq": {"member.consent.sms": True}}, {"member.consent": {"sms": True}}, True),
        ({"eq": {"member.consent.sms": True}}, {"member": {"consent": {"sms": False}}}, False),
        ({"eq": {"event.fields.score": 3}}, {"event.fields": {"score": "3"}}, False),
        ({"eq": {"order.amount_minor": 1}}, {"order.amount_minor": True}, False),  # bool ≠ int
        ({"lte": {"time.date": "2026-02-22"}}, {"time.date": dt.date(2026, 2, 22)}, True),
    ],
)
def test_operators(data: Any, ctx: dict[str, Any], expected: bool) -> None:
    cond = parse(data, SPEC)
    assert evaluate(cond, ctx) is expected
    assert explain(cond, ctx).passed is expected


def test_resolve_flat_then_nested() -> None:
    assert resolve({"a.b": 1}, "a.b") == 1
    assert resolve({"a": {"b": {"c": 2}}}, "a.b.c") == 2
    assert resolve({"a.b": {"c": 3}}, "a.b.c") == 3
    assert resolve({"a": {"b": 1}}, "a.b.c") is None
    assert resolve({}, "x") is None


def test_time_facts_use_the_programme_zone() -> None:
    from zoneinfo import ZoneInfo

    # 2026-06-09T17:30Z is Wednesday 01:30 in Shanghai but still Tuesday in UTC.
    at = dt.datetime(2026, 6, 9, 17, 30, tzinfo=dt.UTC)
    assert time_facts(ZoneInfo("Asia/Shanghai"), at) == {
        "time.weekday": "wed",
        "time.isoweekday": 3,
        "time.hour": 1,
        "time.date": dt.date(2026, 6, 10),
        "time.month": 6,
        "time.day": 10,
    }
    assert time_facts(ZoneInfo("UTC"), at)["time.weekday"] == "tue"


def test_member_facts_needed() -> None:
    assert member_facts_needed(["member.tier", "order.channel"]) == set()
    assert member_facts_needed(["member.tags", "member.consent.sms", "member.points"]) == {
        "member.tags",
        "member.consent",
        "member.points",
    }


# --------------------------------------------------------------------------- laws (hypothesis)

SMALL = FieldSpec(
    {
        "n": Field(FieldType.INT),
        "s": Field(FieldType.STR, values=("a", "b", "c"), ordered=True),
        "b": Field(FieldType.BOOL),
        "d": Field(FieldType.DATE),
        "tags": Field(FieldType.LIST_STR),
    }
)
ints = st.integers(-3, 3)
strs = st.sampled_from(["a", "b", "c"])
dates = st.dates(dt.date(2026, 1, 1), dt.date(2026, 1, 5))


def _clauses() -> st.SearchStrategy[dict[str, Any]]:
    def ordered(name: str, vals: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.one_of(
            st.builds(
                lambda op, v: {op: {name: v}},
                st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]),
                vals,
            ),
            st.builds(lambda v: {"in": {name: v}}, st.lists(vals, min_size=1, max_size=3)),
            st.builds(lambda a, b: {"between": {name: sorted([a, b])}}, vals, vals),
        )

    return st.one_of(
        ordered("n", ints),
        ordered("s", strs),
        ordered("d", dates),
        st.builds(lambda op, v: {op: {"b": v}}, st.sampled_from(["eq", "ne"]), st.booleans()),
        st.builds(lambda v: {"contains": {"tags": v}}, strs),
        st.builds(lambda f: {"exists": f}, st.sampled_from(["n", "s", "b", "d", "tags"])),
    )


conditions_data = st.recursive(
    _clauses(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=8,
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "n": st.one_of(st.none(), ints),
        "s": st.one_of(st.none(), strs, st.just("z")),
        "b": st.booleans(),
        "d": dates,
        "tags": st.lists(strs, max_size=3),
    },
)


def _cond(data: Any) -> Condition:
    return parse(data, SMALL)


@settings(max_examples=300, deadline=None)
@given(conditions_data, contexts)
def test_explain_agrees_with_evaluate_and_shows_every_clause(data: Any, ctx: Any) -> None:
    cond = _cond(data)
    ex = explain(cond, ctx)
    assert ex.passed is evaluate(cond, ctx)
    leaves = [node for _depth, node in ex.walk() if node.field is not None]

    def count(c: Condition) -> int:
        if isinstance(c, (All, AnyOf)):
            return sum(count(x) for x in c.items)
        if isinstance(c, Not):
            return count(c.item)
        return 1

    assert len(leaves) == count(cond)
    for leaf in leaves:
        assert leaf.passed is evaluate(parse(_leaf_data(data, leaf.path), SMALL), ctx)


def _leaf_data(data: Any, path: str) -> Any:
    node = data
    for part in path.split(".") if path else []:
        node = node[int(part)] if part.isdigit() else node[part]
    return node


@settings(max_examples=300, deadline=None)
@given(conditions_data, conditions_data, contexts)
def test_logical_laws(a_data: Any, b_data: Any, ctx: Any) -> None:
    a, b = _cond(a_data), _cond(b_data)
    ea, eb = evaluate(a, ctx), evaluate(b, ctx)
    assert evaluate(Not(Not(a)), ctx) is ea
    assert evaluate(All((a, b)), ctx) is (ea and eb)
    assert evaluate(AnyOf((a, b)), ctx) is (ea or eb)
    assert evaluate(Not(All((a, b))), ctx) is evaluate(AnyOf((Not(a), Not(b))), ctx)
    assert evaluate(Not(AnyOf((a, b))), ctx) is evaluate(All((Not(a), Not(b))), ctx)
    assert evaluate(All((a,)), ctx) is ea and evaluate(AnyOf((a,)), ctx) is ea
    assert parse(to_data(a), SMALL) == a


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["n", "s", "d"]), st.data(), contexts)
def test_ne_is_not_eq_and_comparisons_partition(name: str, data: Any, ctx: Any) -> None:
    value = data.draw({"n": ints, "s": strs, "d": dates}[name])
    plain = value.isoformat() if isinstance(value, dt.date) else value

    def ev(op: str) -> bool:
        return evaluate(parse({op: {name: plain}}, SMALL), ctx)

    assert ev("ne") is not ev("eq")
    if resolve(ctx, name) in (None, "z"):  # absent, or outside the ordered values
        assert not (ev("lt") or ev("eq") or ev("gt"))
    else:
        assert [ev("lt"), ev("eq"), ev("gt")].count(True) == 1
        assert ev("gte") is (ev("gt") or ev("eq"))
        assert ev("lte") is (ev("lt") or ev("eq"))
