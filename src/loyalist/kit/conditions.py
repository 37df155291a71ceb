"""A small, typed condition language: data, never code.

A condition is a tree written as plain data (YAML / JSON)::

    all:                                  # every clause must hold (non-empty list)
      - eq: {time.weekday: wed}           # operator: {field: expected value}
      - gte: {member.tier: gold}          # ordered values compare by their rank
      - gt: {order.amount_minor: 10000}
      - any: [...]                        # at least one clause (non-empty list)
      - not: {contains: {member.tags: staff}}
      - exists: member.birthday_month     # the field has a value

Operators: ``eq`` ``ne`` ``in`` ``gt`` ``gte`` ``lt`` ``lte`` ``between`` (inclusive
``[low, high]``) ``contains`` (a list field holds the value) ``exists``. Which operator is
valid depends on the field's type in a :class:`FieldSpec` (the catalogue of fields the
context offers); :func:`parse` checks every clause against it and reports *all* problems
with their paths (``all.1.gte: ...``). :func:`evaluate` gives the truth value and
:func:`explain` the same verdict with a tree of clauses, each with the actual and the
expected value (every clause is evaluated, short-circuiting never hides one).

A context is a mapping of dotted field names to values (``{"member.tier": "gold"}``) or a
nested mapping (``{"member": {"tier": "gold"}}``); a missing field or ``None`` is absent:
only ``exists`` and ``ne`` can hold for an absent value.

Pure: no database, no HTTP, no business words.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

__all__ = [
    "All",
    "AnyOf",
    "Clause",
    "Condition",
    "ConditionError",
    "Explanation",
    "Field",
    "FieldSpec",
    "FieldType",
    "Not",
    "Problem",
    "check_value",
    "evaluate",
    "explain",
    "fields_used",
    "parse",
    "resolve",
    "to_data",
]


class FieldType(StrEnum):
    INT = "int"
    STR = "str"
    BOOL = "bool"
    DATE = "date"
    LIST_STR = "list[str]"
    ANY = "any"  # free-form (event fields): eq, ne, in, exists only


COMPARISONS = ("gt", "gte", "lt", "lte")
OPERATORS = ("eq", "ne", "in", *COMPARISONS, "between", "contains", "exists")
_LOGICAL = ("all", "any", "not")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a context.

    ``values``: the allowed values when known (tier codes, weekday names); with
    ``ordered=True`` they are listed from lowest to highest and ``gt``/``gte``/``lt``/
    ``lte``/``between`` compare ranks ("gold or above"). ``minimum``/``maximum`` bound an
    int field.
    """

    type: FieldType
    description: str = ""
    values: tuple[Any, ...] | None = None
    ordered: bool = False
    minimum: int | None = None
    maximum: int | None = None

    def operators(self) -> tuple[str, ...]:
        t = self.type
        if t in (FieldType.INT, FieldType.DATE) or (t is FieldType.STR and self.ordered):
            return ("eq", "ne", "in", *COMPARISONS, "between", "exists")
        if t in (FieldType.STR, FieldType.ANY):
            return ("eq", "ne", "in", "exists")
        if t is FieldType.BOOL:
            return ("eq", "ne", "exists")
        return ("contains", "exists")  # LIST_STR


class FieldSpec:
    """The catalogue of fields a context offers.

    Keys are dotted names; a key ending in ``.*`` covers any one or more further segments
    (``consent.*`` covers ``consent.sms``).
    """

    def __init__(self, fields: Mapping[str, Field]) -> None:
        self.fields: dict[str, Field] = dict(fields)

    def get(self, name: str) -> Field | None:
        if name in self.fields:
            return self.fields[name]
        for key, f in self.fields.items():
            if key.endswith(".*") and name.startswith(key[:-1]) and len(name) > len(key) - 1:
                return f
        return None

    def names(self) -> list[str]:
        return sorted(self.fields)


# --------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Clause:
    """``op`` applied to ``field`` with the expected ``value`` (already typed)."""

    op: str
    field: str
    value: Any = None
    rank: tuple[Any, ...] | None = None  # ordered values, lowest first


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition: TypeAlias = All | AnyOf | Not | Clause


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str


class ConditionError(ValueError):
    """The condition is not valid; ``problems`` name each path and what is wrong."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))


# --------------------------------------------------------------------------- parsing


def _join(prefix: str, part: str | int) -> str:
    return f"{prefix}.{part}" if prefix else str(part)


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, dt.datetime):
        return "datetime"
    return {int: "int", str: "str", dt.date: "date", list: "list", dict: "mapping"}.get(
        type(v), type(v).__name__
    )


def _scalar(f: Field, value: Any, path: str, problems: list[Problem]) -> Any:
    """``value`` coerced to the field's scalar type, or a problem recorded (returns None)."""
    t = f.type
    if t is FieldType.LIST_STR:
        t = FieldType.STR  # the element type, for contains
    ok: Any = None
    if t is FieldType.INT:
        if isinstance(value, int) and not isinstance(value, bool):
            ok = value
    elif t is FieldType.STR:
        if isinstance(value, str):
            ok = value
    elif t is FieldType.BOOL:
        if isinstance(value, bool):
            ok = value
    elif t is FieldType.DATE:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            ok = value
        elif isinstance(value, str):
            try:
                ok = dt.date.fromisoformat(value)
            except ValueError:
                problems.append(Problem(path, f"{value!r} is not a date (YYYY-MM-DD)"))
                return None
    else:  # ANY
        if isinstance(value, (str, int, bool, dt.date)):
            ok = value
    if ok is None:
        problems.append(
            Problem(path, f"expected a {t.value} value, got {_type_name(value)} {value!r}")
        )
        return None
    if f.values is not None and f.type is not FieldType.LIST_STR and ok not in f.values:
        shown = ", ".join(str(v) for v in f.values)
        problems.append(Problem(path, f"{ok!r} is not one of: {shown}"))
        return None
    if t is FieldType.INT:
        if f.minimum is not None and ok < f.minimum:
            problems.append(Problem(path, f"{ok} is below the minimum {f.minimum}"))
            return None
        if f.maximum is not None and ok > f.maximum:
            problems.append(Problem(path, f"{ok} is above the maximum {f.maximum}"))
            return None
    return ok


def _parse(data: Any, spec: FieldSpec, path: str, problems: list[Problem]) -> Condition | None:
    if not isinstance(data, Mapping):
        problems.append(
            Problem(path or "$", f"expected a mapping like {{all: [...]}}, got {_type_name(data)}")
        )
        return None
    if len(data) != 1:
        keys = ", ".join(map(str, data)) or "nothing"
        problems.append(
            Problem(
                path or "$",
                f"a condition has exactly one key (all, any, not or an operator), got {keys}",
            )
        )
        return None
    ((key, body),) = data.items()
    here = _join(path, str(key))
    if key in ("all", "any"):
        if not isinstance(body, list):
            problems.append(Problem(here, f"expected a list of conditions, got {_type_name(body)}"))
            return None
        if not body:
            problems.append(Problem(here, f"'{key}' needs at least one condition"))
            return None
        items = [_parse(item, spec, _join(here, i), problems) for i, item in enumerate(body)]
        if any(i is None for i in items):
            return None
        kept = tuple(i for i in items if i is not None)
        return All(kept) if key == "all" else AnyOf(kept)
    if key == "not":
        inner = _parse(body, spec, here, problems)
        return None if inner is None else Not(inner)
    if key not in OPERATORS:
        problems.append(
            Problem(
                here,
                f"unknown operator {key!r}; use all, any, not or one of: {', '.join(OPERATORS)}",
            )
        )
        return None
    if key == "exists":
        if not isinstance(body, str):
            problems.append(Problem(here, f"expected a field name, got {_type_name(body)}"))
            return None
        name, value = body, None
    else:
        if not isinstance(body, Mapping) or len(body) != 1:
            problems.append(
                Problem(
                    here,
                    f"expected one field and its value, e.g. {{{key}: {{order.channel: app}}}}",
                )
            )
            return None
        ((name, value),) = body.items()
        if not isinstance(name, str):
            problems.append(Problem(here, f"a field name must be text, got {name!r}"))
            return None
    f = spec.get(name)
    if f is None:
        problems.append(Problem(here, f"unknown field {name!r}"))
        return None
    if key not in f.operators():
        problems.append(
            Problem(
                here,
                f"operator {key!r} is not valid for {name} ({f.type.value}); "
                f"use one of: {', '.join(f.operators())}",
            )
        )
        return None
    rank = f.values if f.ordered else None
    if key == "exists":
        return Clause("exists", name)
    if key == "in":
        if not isinstance(value, list) or not value:
            problems.append(Problem(here, f"expected a non-empty list of values for {name}"))
            return None
        before = len(problems)
        typed = [_scalar(f, v, _join(here, i), problems) for i, v in enumerate(value)]
        return None if len(problems) > before else Clause("in", name, tuple(typed), rank)
    if key == "between":
        if not isinstance(value, list) or len(value) != 2:
            problems.append(Problem(here, f"expected [low, high] for {name}"))
            return None
        before = len(problems)
        low = _scalar(f, value[0], _join(here, 0), problems)
        high = _scalar(f, value[1], _join(here, 1), problems)
        if len(problems) > before:
            return None
        if _key(low, rank) > _key(high, rank):
            problems.append(Problem(here, f"low {low!r} is above high {high!r}"))
            return None
        return Clause("between", name, (low, high), rank)
    before = len(problems)
    typed_value = _scalar(f, value, here, problems)
    return None if len(problems) > before else Clause(key, name, typed_value, rank)


def parse(data: Any, fields: FieldSpec) -> Condition:
    """The condition written as ``data``, checked against ``fields``.

    Raises :class:`ConditionError` listing every problem with its path (relative to the
    condition: ``all.1.gte``).
    """
    problems: list[Problem] = []
    cond = _parse(data, fields, "", problems)
    if problems or cond is None:
        raise ConditionError(problems or [Problem("$", "invalid condition")])
    return cond


def check_value(spec: FieldSpec, name: str, value: Any) -> list[Problem]:
    """Problems with ``value`` as the context value of field ``name`` (None is absent)."""
    f = spec.get(name)
    if f is None:
        return [Problem(name, f"unknown field {name!r}")]
    if value is None:
        return []
    problems: list[Problem] = []
    if f.type is FieldType.LIST_STR:
        if not isinstance(value, list):
            return [Problem(name, f"expected a list of text, got {_type_name(value)}")]
        for i, v in enumerate(value):
            _scalar(f, v, _join(name, i), problems)
        return problems
    _scalar(f, value, name, problems)
    return problems


def to_data(cond: Condition) -> dict[str, Any]:
    """The plain-data form of ``cond`` (dates as ISO text); ``parse`` reads it back."""

    def plain(v: Any) -> Any:
        return v.isoformat() if isinstance(v, dt.date) else v

    if isinstance(cond, All):
        return {"all": [to_data(c) for c in cond.items]}
    if isinstance(cond, AnyOf):
        return {"any": [to_data(c) for c in cond.items]}
    if isinstance(cond, Not):
        return {"not": to_data(cond.item)}
    if cond.op == "exists":
        return {"exists": cond.field}
    if cond.op in ("in", "between"):
        return {cond.op: {cond.field: [plain(v) for v in cond.value]}}
    return {cond.op: {cond.field: plain(cond.value)}}


def fields_used(cond: Condition) -> set[str]:
    """Every field name the condition reads (to load only what it needs)."""
    if isinstance(cond, (All, AnyOf)):
        out: set[str] = set()
        for c in cond.items:
            out |= fields_used(c)
        return out
    if isinstance(cond, Not):
        return fields_used(cond.item)
    return {cond.field}


# --------------------------------------------------------------------------- evaluation

_MISSING = object()


def resolve(ctx: Mapping[str, Any], name: str) -> Any:
    """The value of dotted ``name`` in ``ctx`` (flat or nested); ``None`` when absent."""
    if name in ctx:
        return ctx[name]
    parts = name.split(".")
    # The longest flat prefix first ("member.consent" -> {"sms": True}), then nesting.
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in ctx:
            node: Any = ctx[head]
            for part in parts[cut:]:
                if not isinstance(node, Mapping) or part not in node:
                    node = _MISSING
                    break
                node = node[part]
            if node is not _MISSING:
                return node
    return None


def _key(v: Any, rank: tuple[Any, ...] | None) -> Any:
    if rank is not None:
        return rank.index(v) if v in rank else None
    return v


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, dt.datetime) or isinstance(b, dt.datetime):
        return False
    for kind in (int, str, dt.date):
        if isinstance(a, kind):
            return isinstance(b, kind)
    return False


def _clause(c: Clause, actual: Any) -> bool:
    if c.op == "exists":
        return actual is not None
    if c.op == "ne":
        return actual is None or not _same_kind(actual, c.value) or actual != c.value
    if actual is None:
        return False
    if c.op == "contains":
        return isinstance(actual, (list, tuple, set, frozenset)) and c.value in actual
    if c.op == "eq":
        return _same_kind(actual, c.value) and actual == c.value
    if c.op == "in":
        return any(_same_kind(actual, v) and actual == v for v in c.value)
    expected = c.value if c.op != "between" else c.value[0]
    if not _same_kind(actual, expected):
        return False
    a = _key(actual, c.rank)
    if a is None:  # a value outside the ordered list has no rank
        return False
    if c.op == "between":
        return bool(_key(c.value[0], c.rank) <= a <= _key(c.value[1], c.rank))
    e = _key(c.value, c.rank)
    return bool({"gt": a > e, "gte": a >= e, "lt": a < e, "lte": a <= e}[c.op])


def evaluate(cond: Condition, ctx: Mapping[str, Any]) -> bool:
    """Whether ``cond`` holds for ``ctx``."""
    if isinstance(cond, All):
        return all(evaluate(c, ctx) for c in cond.items)
    if isinstance(cond, AnyOf):
        return any(evaluate(c, ctx) for c in cond.items)
    if isinstance(cond, Not):
        return not evaluate(cond.item, ctx)
    return _clause(cond, resolve(ctx, cond.field))


@dataclass(frozen=True, slots=True)
class Explanation:
    """One node of an explained condition.

    ``op`` is ``all``/``any``/``not`` or an operator; for a clause ``field``, ``expected``
    and ``actual`` are set. ``path`` is the node's path in the condition (``all.1``).
    """

    op: str
    passed: bool
    path: str
    field: str | None = None
    expected: Any = None
    actual: Any = None
    children: tuple[Explanation, ...] = ()

    def text(self) -> str:
        """The clause in one line, e.g. ``member.tier gte gold (actual: silver)``."""
        if self.field is None:
            return self.op
        if self.op == "exists":
            return f"{self.field} exists (actual: {_show(self.actual)})"
        return f"{self.field} {self.op} {_show(self.expected)} (actual: {_show(self.actual)})"

    def as_data(self) -> dict[str, Any]:
        """JSON-ready: dates as ISO text, one ``text`` line per node, children nested."""

        def plain(v: Any) -> Any:
            if isinstance(v, dt.date):
                return v.isoformat()
            if isinstance(v, (list, tuple, set, frozenset)):
                return [plain(x) for x in v]
            return v

        data: dict[str, Any] = {"op": self.op, "passed": self.passed, "path": self.path}
        if self.field is not None:
            data.update(
                field=self.field,
                expected=plain(self.expected),
                actual=plain(self.actual),
                text=self.text(),
            )
        if self.children:
            data["children"] = [c.as_data() for c in self.children]
        return data

    def walk(self, depth: int = 0) -> Iterable[tuple[int, Explanation]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


def _show(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, (list, tuple, set, frozenset)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def explain(cond: Condition, ctx: Mapping[str, Any], path: str = "") -> Explanation:
    """``evaluate`` with reasons: every clause, its actual value and whether it passed."""
    if isinstance(cond, (All, AnyOf)):
        key = "all" if isinstance(cond, All) else "any"
        here = _join(path, key)
        kids = tuple(explain(c, ctx, _join(here, i)) for i, c in enumerate(cond.items))
        verdict = all(k.passed for k in kids) if key == "all" else any(k.passed for k in kids)
        return Explanation(key, verdict, path, children=kids)
    if isinstance(cond, Not):
        kid = explain(cond.item, ctx, _join(path, "not"))
        return Explanation("not", not kid.passed, path, children=(kid,))
    actual = resolve(ctx, cond.field)
    if isinstance(actual, (set, frozenset)):
        actual = sorted(actual)
    expected = list(cond.value) if cond.op in ("in", "between") else cond.value
    return Explanation(cond.op, _clause(cond, actual), path, cond.field, expected, actual)
