"""The ``fraud`` document: the fraud rules (风控规则), versioned like every configuration
document (``loyalist.documents``)::

    rules:
      - code: device-burst
        on: [redemption]            # order | redemption (both by default)
        when: {gt: {device.redemptions.1m: 10}}
        outcome: block              # block (refused with the reason) | hold (orders only)
        reason: 同一设备一分钟内兑换超过10次
        mode: live                  # live | shadow (logs what it would do, changes nothing)

``hold`` puts an order's points in a non-spendable lot until a reviewer decides; it applies
to orders only (a redemption is allowed or refused).
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from loyalist.documents import registry as documents
from loyalist.documents import service as document_service
from loyalist.documents.errors import DocumentInvalid, NoVersion
from loyalist.errors import FieldError
from loyalist.fraud import domain
from loyalist.kit import conditions as cond
from loyalist.kit.documents import path_errors

KIND = "fraud"
RequestKind = Literal["order", "redemption"]
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


def _both() -> list[RequestKind]:
    return ["order", "redemption"]


class RuleDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Slug
    on: list[RequestKind] = Field(default_factory=_both, min_length=1, max_length=2)
    when: dict[str, Any]
    outcome: Literal["hold", "block"]
    reason: str = Field(min_length=1, max_length=300)
    mode: Literal["live", "shadow"] = "live"


class FraudDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RuleDoc] = Field(default_factory=list, max_length=100)


def _rules(doc: FraudDocument) -> tuple[list[domain.Rule], list[FieldError]]:
    out: list[domain.Rule] = []
    problems: list[FieldError] = []
    seen: set[str] = set()
    for i, r in enumerate(doc.rules):
        if r.code in seen:
            problems.append(FieldError(f"rules.{i}.code", "duplicate code", "duplicate"))
        seen.add(r.code)
        if r.outcome == "hold" and "redemption" in r.on:
            problems.append(
                FieldError(
                    f"rules.{i}.outcome",
                    "hold applies to orders only: a redemption is allowed or blocked",
                    "hold_on_redemption",
                )
            )
        try:
            when = cond.parse(r.when, domain.CATALOGUE)
        except cond.ConditionError as exc:
            problems += [
                FieldError(f"rules.{i}.when.{p.path}".rstrip("."), p.message, "condition")
                for p in exc.problems
            ]
            continue
        out.append(domain.Rule(r.code, tuple(r.on), when, r.outcome, r.reason, r.mode == "shadow"))
    return out, problems


def parse(data: Any) -> FraudDocument:
    """``data`` validated, every problem named by its field path (conditions included)."""
    if not isinstance(data, dict):
        raise DocumentInvalid(
            "A fraud document must be a mapping.", [FieldError("$", "expected a mapping")]
        )
    try:
        doc = FraudDocument.model_validate(data)
    except ValidationError as exc:
        errors = [FieldError(e.path, e.message, e.type) for e in path_errors(exc)]
        raise DocumentInvalid(
            f"The fraud document has {len(errors)} error(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
            errors,
        ) from exc
    _r, problems = _rules(doc)
    if problems:
        raise DocumentInvalid(
            f"The fraud document has {len(problems)} error(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in problems[:5]),
            problems,
        )
    return doc


KIND_SPEC = documents.register(
    documents.Kind(
        name=KIND,
        description="Fraud rules (风控): velocity limits with hold/block outcomes, shadow mode",
        schema=FraudDocument,
        parser=parse,
    )
)
document_service.watch(KIND)  # read on every order (speed, issue 11)


class Active:
    """The parsed rules in force, and the counters they read."""

    def __init__(self, version: int | None, rules: list[domain.Rule]) -> None:
        self.version = version
        self.rules = rules
        self.keys, self.device_members = domain.needs(rules)
        # Per request kind: the counters it bumps (its own kind, read by any rule: they must
        # count every request) and those it only reads (the other kind, read by its rules).
        self.bump: dict[str, list[domain.CounterKey]] = {}
        self.read: dict[str, list[domain.CounterKey]] = {}
        for kind, own in domain.REQUEST_KINDS.items():
            mine, _dm = domain.needs([r for r in rules if kind in r.on])
            order = sorted(self.keys, key=lambda k: (k.scope, k.kind, k.window))
            self.bump[kind] = [k for k in order if k.kind == own]
            self.read[kind] = [k for k in order if k.kind != own and k in mine]


_EMPTY = Active(None, [])
_cache: dict[tuple[int, str], Active] = {}
_cache_lock = threading.Lock()


def active(session: Session) -> Active:
    """The latest published rules (none when no fraud document was published): one query
    per transaction (memoised in the session), parsed once per process and version."""
    memo = session.info.get("fraud.active")
    if isinstance(memo, Active):
        return memo
    # speed (issue 11): the transaction's read of the active programme also read the key of
    # the latest fraud document (``documents.watch``): a parsed version costs no statement
    known = document_service.latest_key(session, KIND)
    if known is None:
        session.info["fraud.active"] = _EMPTY
        return _EMPTY
    if isinstance(known, tuple):
        with _cache_lock:
            hit = _cache.get(known)
        if hit is not None:
            session.info["fraud.active"] = hit
            return hit
    try:
        v = document_service.get(session, KIND)
    except NoVersion:
        found = _EMPTY
    else:
        key = (v.version, v.checksum)
        with _cache_lock:
            hit = _cache.get(key)
        if hit is None:
            rules, _p = _rules(FraudDocument.model_validate(v.document))
            hit = Active(v.version, rules)
            with _cache_lock:
                _cache[key] = hit
        found = hit
    session.info["fraud.active"] = found
    return found


def rules_of(document: FraudDocument) -> list[domain.Rule]:
    return _rules(document)[0]
