"""Coupons: templates, codes (batches, imports, issuance), validation, redemption with an
order, restoration on return, a member's coupons. Never commits.

Concurrency: every limit is a conditional update (``… WHERE uses < limit``), taken in one
order by every writer — the order's points account (orders), then code rows by id, then
per-member counters by template id, then template rows by id — so two checkouts of one
single-use code cannot both pass, and a budget never goes below zero (the database's check
constraints say so too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalist.access.permissions import (
    MEMBER_READ,
    MEMBER_WRITE,
    ORDER_READ,
    PROGRAMME_PUBLISH,
    PROGRAMME_READ,
    require,
)
from loyalist.audit import service as audit
from loyalist.coupon import domain
from loyalist.coupon.errors import (
    CONFLICT_BY_REASON,
    BatchExists,
    BatchInfeasible,
    BatchNotFound,
    CodesExist,
    CouponInvalid,
    GuessThrottled,
    TemplateExists,
    TemplateInvalid,
    TemplateNotFound,
)
from loyalist.coupon.schemas import (
    BasketLineOut,
    BatchCodes,
    BatchCreate,
    BatchOut,
    CodeResultOut,
    CouponOut,
    CouponPage,
    CouponStatus,
    IssueIn,
    LineDiscountOut,
    TemplateCreate,
    TemplateOut,
    TemplatePage,
    ValidateIn,
    ValidateOut,
)
from loyalist.errors import FieldError, Forbidden
from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.kit import conditions
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.localtime import local_day, start_of_local_day
from loyalist.kit.pagination import encode_cursor
from loyalist.member import service as members
from loyalist.models import (
    CouponBatch,
    CouponCode,
    CouponGuess,
    CouponMemberUse,
    CouponRedemption,
    CouponTemplate,
    Member,
    Order,
    OrgUnit,
)
from loyalist.org import service as org
from loyalist.programme import service as programmes
from loyalist.programme.conditions import RFM_FACTS, catalogue, time_facts

INLINE_BATCH = 5_000  # larger generated batches run as background jobs
CHUNK = 10_000  # codes per job run (progress shows between runs)
ISSUE_LENGTH = 12  # codes issued to a member: 12 × 31 characters ≈ 59 bits
GUESS_WINDOW = timedelta(minutes=10)
GUESS_LIMIT = 20  # unknown codes per API key (and per member) per window


# --------------------------------------------------------------------------- templates


def _tier_codes(session: Session) -> list[str]:
    _v, programme = programmes.active(session)
    return [t.code for t in programme.tiers.levels]


def rules_of(
    t: CouponTemplate, tier_codes: Sequence[str], *, with_condition: bool = True
) -> domain.Rules:
    r = t.rules
    when = None
    if r.get("when") and with_condition:
        when = conditions.parse(r["when"], catalogue(tier_codes))
    return domain.Rules(
        kind=domain.Kind(r["kind"]),
        amount_minor=int(r.get("amount_minor", 0)),
        basis_points=int(r.get("basis_points", 0)),
        cap_minor=r.get("cap_minor"),
        free_quantity=int(r.get("free_quantity", 1)),
        min_spend_minor=int(r.get("min_spend_minor", 0)),
        skus=tuple(r.get("skus", ())),
        categories=tuple(r.get("categories", ())),
        stores=tuple(r.get("stores", ())),
        channels=tuple(r.get("channels", ())),
        when=when,
        priority=int(r.get("priority", 100)),
        exclusive=bool(r.get("exclusive", False)),
        group=str(r.get("group", "general")),
        stacks_with=tuple(r.get("stacks_with", ())),
        max_per_order=int(r.get("max_per_order", 1)),
        restore_on_return=bool(r.get("restore_on_return", True)),
    )


def _require_hq(session: Session, actor: Actor, action: str) -> None:
    require(actor, action)
    hq = org.get_hq(session)
    if not actor.sees(hq.path if hq is not None else "/"):
        raise Forbidden("Coupon templates and batches are managed at headquarters.")


def template_out(t: CouponTemplate) -> TemplateOut:
    return TemplateOut(
        code=t.code,
        name=t.name,
        name_en=t.name_en,
        active=t.active,
        rules=t.rules,
        issued=t.issued,
        uses=t.uses,
        spent_minor=t.spent_minor,
        budget_minor=t.budget_minor,
        limit_total=t.limit_total,
    )


def create_template(
    session: Session, actor: Actor, data: TemplateCreate
) -> tuple[bool, TemplateOut]:
    """Create a template once; the same content again is found (False), other content 409."""
    _require_hq(session, actor, PROGRAMME_PUBLISH)
    if data.when is not None:
        try:
            conditions.parse(data.when, catalogue(_tier_codes(session)))
        except conditions.ConditionError as exc:
            raise TemplateInvalid(
                "The template's condition is not valid.",
                [FieldError(f"when.{p.path}".rstrip("."), p.message) for p in exc.problems],
            ) from exc
    rules = data.rules_data()
    existing = session.scalar(select(CouponTemplate).where(CouponTemplate.code == data.code))
    if existing is not None:
        same = (
            existing.rules == rules
            and existing.name == data.name
            and existing.name_en == data.name_en
        )
        if not same:
            raise TemplateExists(
                f"Template {data.code!r} exists with other rules.",
                [FieldError("code", "already used", "duplicate")],
            )
        return False, template_out(existing)
    now = utcnow()
    t = CouponTemplate(
        code=data.code,
        name=data.name,
        name_en=data.name_en,
        rules=rules,
        active=data.active,
        uses=0,
        spent_minor=0,
        issued=0,
        limit_total=data.limit_total,
        budget_minor=data.budget_minor,
        created_at=now,
        updated_at=now,
    )
    session.add(t)
    session.flush()
    audit.record(
        session, actor, "coupon.template.create", "coupon_template", t.id, org_path="/", after=rules
    )
    return True, template_out(t)


def set_active(session: Session, actor: Actor, code: str, active: bool) -> TemplateOut:
    _require_hq(session, actor, PROGRAMME_PUBLISH)
    t = template_by_code(session, code, lock=True)
    if t.active != active:
        t.active, t.updated_at = active, utcnow()
        session.flush()
        audit.record(
            session,
            actor,
            "coupon.template.activate" if active else "coupon.template.pause",
            "coupon_template",
            t.id,
            org_path="/",
            before={"active": not active},
            after={"active": active},
        )
    return template_out(t)


def template_by_code(session: Session, code: str, *, lock: bool = False) -> CouponTemplate:
    q = select(CouponTemplate).where(CouponTemplate.code == code)
    if lock:
        q = q.with_for_update()
    t = session.scalar(q)
    if t is None:
        raise TemplateNotFound(
            f"No coupon template {code!r}.", [FieldError("template", "unknown", "unknown")]
        )
    return t


def list_templates(session: Session, actor: Actor) -> TemplatePage:
    require(actor, PROGRAMME_READ)
    rows = session.scalars(select(CouponTemplate).order_by(CouponTemplate.code))
    return TemplatePage(items=[template_out(t) for t in rows])


def template_view(session: Session, actor: Actor, code: str) -> TemplateOut:
    require(actor, PROGRAMME_READ)
    return template_out(template_by_code(session, code))


# --------------------------------------------------------------------------- codes


def _expiry(session: Session, t: CouponTemplate, issued_at: datetime) -> datetime | None:
    """A code's end: the template's ``valid_until`` or ``valid_days`` programme-local days
    from the issue day on (issued 10 June with 7 days: valid through 16 June), the earlier."""
    ends: list[datetime] = []
    until = t.rules.get("valid_until")
    if until:
        ends.append(datetime.fromisoformat(until))
    days = t.rules.get("valid_days")
    if days:
        _v, programme = programmes.active(session)
        first = local_day(programme.tz, issued_at)
        ends.append(start_of_local_day(programme.tz, first + timedelta(days=int(days))))
    return min(ends) if ends else None


def _valid_from(t: CouponTemplate) -> datetime | None:
    start = t.rules.get("valid_from")
    return datetime.fromisoformat(start) if start else None


def _insert_codes(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = postgresql.insert(CouponCode)
    else:
        stmt = sqlite.insert(CouponCode)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["code"]), rows)


def _existing_codes(session: Session, codes: Iterable[str]) -> set[str]:
    found: set[str] = set()
    batch = list(codes)
    for i in range(0, len(batch), 1000):
        part = batch[i : i + 1000]
        found.update(session.scalars(select(CouponCode.code).where(CouponCode.code.in_(part))))
    return found


def _count_in_batch(session: Session, batch_id: int) -> int:
    return int(session.scalar(select(func.count()).where(CouponCode.batch_id == batch_id)) or 0)


def batch_out(session: Session, b: CouponBatch) -> BatchOut:
    t = session.get(CouponTemplate, b.template_id)
    assert t is not None
    return BatchOut(
        id=b.id,
        external_id=b.external_id,
        template=t.code,
        kind="generated" if b.kind == "generated" else "imported",
        requested=b.requested,
        generated=b.generated,
        status="done" if b.status == "done" else "pending",
        created_at=b.created_at,
        finished_at=b.finished_at,
    )


def _pattern_count(session: Session, prefix: str, length: int) -> int:
    """Codes already made with this prefix and length (they share the pattern's space)."""
    q = select(func.coalesce(func.sum(CouponBatch.requested), 0)).where(
        CouponBatch.prefix == prefix, CouponBatch.length == length, CouponBatch.kind == "generated"
    )
    return int(session.scalar(q) or 0)


def create_batch(session: Session, actor: Actor, data: BatchCreate) -> tuple[bool, BatchOut]:
    """Generate ``count`` codes (a background job above ``INLINE_BATCH``) or import
    ``codes``; the same batch id again finds the batch. Nothing is written for a batch
    that cannot be made (pattern too weak or too full, duplicate or existing codes)."""
    _require_hq(session, actor, PROGRAMME_PUBLISH)
    t = template_by_code(session, data.template)
    existing = session.scalar(
        select(CouponBatch).where(CouponBatch.external_id == data.external_id)
    )
    if existing is not None:
        requested = data.count if data.count is not None else len(data.codes or [])
        if existing.template_id != t.id or existing.requested != requested:
            raise BatchExists(
                f"Batch {data.external_id!r} exists with other content.",
                [FieldError("external_id", "already used", "duplicate")],
            )
        return False, batch_out(session, existing)
    now = utcnow()
    if data.codes is not None:
        codes = [domain.normalise(c) for c in data.codes]
        problems = [
            FieldError(f"codes.{i}", "use 4 to 32 characters A-Z and 0-9", "invalid")
            for i, c in enumerate(codes)
            if not (4 <= len(c) <= domain.MAX_CODE_LENGTH and c.isascii() and c.isalnum())
        ]
        seen: dict[str, int] = {}
        for i, c in enumerate(codes):
            if c in seen:
                problems.append(FieldError(f"codes.{i}", f"repeats codes.{seen[c]}", "duplicate"))
            seen.setdefault(c, i)
        if problems:
            raise BatchInfeasible("Some codes cannot be imported.", problems[:100])
        taken = _existing_codes(session, codes)
        if taken:
            raise CodesExist(
                f"{len(taken)} of the codes exist already.",
                [
                    FieldError(f"codes.{i}", "exists already", "exists")
                    for i, c in enumerate(codes)
                    if c in taken
                ][:100],
            )
        batch = CouponBatch(
            template_id=t.id,
            external_id=data.external_id,
            kind="imported",
            prefix="",
            length=0,
            alphabet="",
            requested=len(codes),
            generated=len(codes),
            status="done",
            created_by=actor.name[:191],
            created_at=now,
            finished_at=now,
        )
        session.add(batch)
        session.flush()
        until, start = _expiry(session, t, now), _valid_from(t)
        _insert_codes(
            session, [_code_row(c, t.id, batch.id, "import", until, start, now) for c in codes]
        )
        if _count_in_batch(session, batch.id) != len(codes):  # a concurrent import took one
            raise CodesExist("Some codes were taken meanwhile.", [FieldError("codes", "retry")])
    else:
        assert data.count is not None
        prefix = domain.normalise(data.prefix)
        pattern = domain.check_pattern(
            prefix,
            data.length,
            data.alphabet,
            data.count,
            existing=_pattern_count(session, prefix, data.length),
        )
        if pattern:
            raise BatchInfeasible(
                "The batch cannot be made with this pattern.",
                [FieldError(p.field, p.message, p.code) for p in pattern],
            )
        batch = CouponBatch(
            template_id=t.id,
            external_id=data.external_id,
            kind="generated",
            prefix=prefix,
            length=data.length,
            alphabet=data.alphabet,
            requested=data.count,
            generated=0,
            status="pending",
            created_by=actor.name[:191],
            created_at=now,
            finished_at=None,
        )
        session.add(batch)
        session.flush()
        if data.count <= INLINE_BATCH:
            generate_chunk(session, batch.id)
        else:
            queue.enqueue(
                session,
                "coupon.generate_batch",
                {"batch_id": batch.id},
                dedupe_key=f"coupon-batch:{batch.id}:0",
            )
    audit.record(
        session,
        actor,
        "coupon.batch.create",
        "coupon_batch",
        batch.id,
        org_path="/",
        after={"template": t.code, "kind": batch.kind, "requested": batch.requested},
    )
    return True, batch_out(session, batch)


def _code_row(
    code: str,
    template_id: int,
    batch_id: int | None,
    source: str,
    expires_at: datetime | None,
    valid_from: datetime | None,
    now: datetime,
    *,
    member_id: int | None = None,
    issue_key: str | None = None,
) -> dict[str, Any]:
    return {
        "code": code,
        "template_id": template_id,
        "batch_id": batch_id,
        "member_id": member_id,
        "issue_key": issue_key,
        "source": source,
        "uses": 0,
        "valid_from": valid_from,
        "expires_at": expires_at,
        "voided_at": None,
        "created_at": now,
    }


def generate_chunk(session: Session, batch_id: int) -> bool:
    """Generate up to ``CHUNK`` more codes of a batch; True when the batch is complete.

    Codes that exist already (any batch) are skipped and drawn again, so the batch ends
    with exactly ``requested`` codes."""
    b = session.get(CouponBatch, batch_id, with_for_update=True)
    if b is None:
        raise BatchNotFound(f"No batch {batch_id}.")
    if b.status == "done":
        return True
    t = session.get(CouponTemplate, b.template_id)
    assert t is not None
    now = utcnow()
    until, start = _expiry(session, t, b.created_at), _valid_from(t)
    have = _count_in_batch(session, b.id)
    target = min(b.requested, have + CHUNK)
    for _attempt in range(20):
        want = target - have
        if want <= 0:
            break
        fresh = {domain.generate(b.prefix, b.length, b.alphabet) for _ in range(want)}
        fresh -= _existing_codes(session, fresh)
        _insert_codes(
            session, [_code_row(c, t.id, b.id, "batch", until, start, now) for c in sorted(fresh)]
        )
        have = _count_in_batch(session, b.id)
    b.generated = have
    if have >= b.requested:
        b.status, b.finished_at = "done", now
    session.flush()
    return b.status == "done"


def batch_progress(session: Session, batch_id: int) -> int:
    b = session.get(CouponBatch, batch_id)
    return b.generated if b is not None else 0


def batch_view(session: Session, actor: Actor, batch_id: int) -> BatchOut:
    require(actor, PROGRAMME_READ)
    b = session.get(CouponBatch, batch_id)
    if b is None:
        raise BatchNotFound(f"No batch {batch_id}.")
    return batch_out(session, b)


def batch_codes(
    session: Session, actor: Actor, batch_id: int, *, after: int | None, limit: int
) -> BatchCodes:
    """The codes of a batch, for printing or export (headquarters only)."""
    _require_hq(session, actor, PROGRAMME_PUBLISH)
    if session.get(CouponBatch, batch_id) is None:
        raise BatchNotFound(f"No batch {batch_id}.")
    q = select(CouponCode.id, CouponCode.code).where(CouponCode.batch_id == batch_id)
    if after is not None:
        q = q.where(CouponCode.id > after)
    rows = list(session.execute(q.order_by(CouponCode.id).limit(limit)))
    nxt = encode_cursor(rows[-1][0]) if len(rows) == limit else None
    return BatchCodes(items=[r[1] for r in rows], next_cursor=nxt)


def list_batches(session: Session, actor: Actor, limit: int = 100) -> list[BatchOut]:
    require(actor, PROGRAMME_READ)
    rows = session.scalars(select(CouponBatch).order_by(CouponBatch.id.desc()).limit(limit))
    return [batch_out(session, b) for b in rows]


# --------------------------------------------------------------------------- issuance


def issue(
    session: Session,
    template_code: str,
    member: Member,
    *,
    source: str,
    issue_key: str | None,
    actor: Actor,
) -> tuple[bool, CouponCode]:
    """Issue a new code of the template to ``member`` (once per ``issue_key``)."""
    if issue_key is not None:
        found = session.scalar(select(CouponCode).where(CouponCode.issue_key == issue_key))
        if found is not None:
            return False, found
    t = template_by_code(session, template_code)
    if not t.active:
        raise CouponInvalid(
            f"Template {template_code!r} is paused.",
            [FieldError("template", "paused", domain.INACTIVE)],
        )
    now = utcnow()
    code = ""
    for _ in range(10):
        code = domain.generate("", ISSUE_LENGTH, domain.ALPHABET)
        if not _existing_codes(session, [code]):
            break
    row = CouponCode(
        **_code_row(
            code,
            t.id,
            None,
            source,
            _expiry(session, t, now),
            _valid_from(t),
            now,
            member_id=member.id,
            issue_key=issue_key,
        )
    )
    session.add(row)
    session.execute(
        update(CouponTemplate)
        .where(CouponTemplate.id == t.id)
        .values(issued=CouponTemplate.issued + 1)
    )
    session.flush()
    events.emit(
        session,
        "coupon.issued",
        {"member_id": member.id, "template": t.code, "code_id": row.id, "source": source},
        member_id=member.id,
        org_path=member.org_path,
    )
    audit.record(
        session,
        actor,
        "coupon.issue",
        "coupon_code",
        row.id,
        org_path=member.org_path,
        after={"member_id": member.id, "template": t.code, "source": source},
    )
    return True, row


def issue_for_redemption(
    session: Session, actor: Actor, template: str, member: Member, redemption_id: int, n: int
) -> list[CouponCode]:
    """The coupons a catalogue reward gives (one per unit), once per redemption."""
    return [
        issue(
            session,
            template,
            member,
            source="reward",
            issue_key=f"redemption:{redemption_id}:{i}",
            actor=actor,
        )[1]
        for i in range(n)
    ]


def void_for_redemption(session: Session, redemption_id: int) -> int:
    """A cancelled redemption withdraws the coupons it gave that were not used (those used
    stay: the discount was given)."""
    res = session.execute(
        update(CouponCode)
        .where(
            CouponCode.issue_key.startswith(f"redemption:{redemption_id}:"),
            CouponCode.uses == 0,
            CouponCode.voided_at.is_(None),
        )
        .values(voided_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


def void_issued(session: Session, key_prefix: str) -> int:
    """Withdraw the unused coupons issued under keys starting ``key_prefix`` (a refunded
    pass: ``pass:<id>:m``); those used stay."""
    res = session.execute(
        update(CouponCode)
        .where(
            CouponCode.issue_key.startswith(key_prefix),
            CouponCode.uses == 0,
            CouponCode.voided_at.is_(None),
        )
        .values(voided_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


def issue_view(
    session: Session, actor: Actor, member_id: int, data: IssueIn
) -> tuple[bool, CouponOut]:
    """Staff or the API issue a coupon to a member (in scope)."""
    require(actor, MEMBER_WRITE)
    member = members.get(session, actor, member_id)
    key = f"api:{data.reference}:{member.id}" if data.reference else None
    source = "staff" if actor.role is not None else "api"
    created, row = issue(session, data.template, member, source=source, issue_key=key, actor=actor)
    return created, coupon_out(session, row, utcnow())


# --------------------------------------------------------------------------- a member's coupons


def status_of(row: CouponCode, t: CouponTemplate, at: datetime) -> CouponStatus:
    per_code = int(t.rules.get("limit_per_code", 1))
    if row.voided_at is not None:
        return "voided"
    if row.uses >= per_code:
        return "used"
    if row.expires_at is not None and row.expires_at <= at:
        return "expired"
    if row.valid_from is not None and row.valid_from > at:
        return "not_started"
    return "available"


def summary_of(t: CouponTemplate) -> dict[str, Any]:
    keys = ("kind", "amount_minor", "basis_points", "cap_minor", "min_spend_minor")
    return {k: t.rules.get(k) for k in keys if t.rules.get(k) not in (None, 0)}


def coupon_out(session: Session, row: CouponCode, at: datetime) -> CouponOut:
    t = session.get(CouponTemplate, row.template_id)
    assert t is not None
    return CouponOut(
        code=row.code,
        template=t.code,
        name=t.name,
        name_en=t.name_en,
        kind=str(t.rules["kind"]),
        summary=summary_of(t),
        status=status_of(row, t, at),
        uses=row.uses,
        uses_allowed=int(t.rules.get("limit_per_code", 1)),
        valid_from=row.valid_from,
        expires_at=row.expires_at,
        member_id=row.member_id,
        source=row.source,
        issued_at=row.created_at,
    )


def coupons_of(session: Session, member_id: int, limit: int = 200) -> list[CouponOut]:
    """A member's coupons, newest first (no scope check: the member page and the console
    360 view call it after their own)."""
    now = utcnow()
    rows = session.scalars(
        select(CouponCode)
        .where(CouponCode.member_id == member_id)
        .order_by(CouponCode.id.desc())
        .limit(limit)
    )
    return [coupon_out(session, r, now) for r in rows]


def member_coupons_view(session: Session, actor: Actor, member_id: int) -> CouponPage:
    require(actor, MEMBER_READ)
    member = members.get(session, actor, member_id)
    return CouponPage(items=coupons_of(session, member.id))


# --------------------------------------------------------------------------- baskets


class _LineLike(Protocol):
    @property
    def sku(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def quantity(self) -> int: ...
    @property
    def unit_price_minor(self) -> int: ...
    @property
    def discount_minor(self) -> int: ...


class OrderLike(Protocol):
    """What redemption reads of an order (``order.schemas.OrderCreate`` fits)."""

    @property
    def coupons(self) -> list[str]: ...
    @property
    def coupon_minor(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def external_id(self) -> str: ...

    def numbered(self) -> Sequence[tuple[int, _LineLike]]: ...


def _basket(numbered: Sequence[tuple[int, _LineLike]], store: str, channel: str) -> domain.Basket:
    return domain.Basket(
        lines=tuple(
            domain.Line(
                line_no=no,
                sku=ln.sku,
                category=ln.category,
                quantity=ln.quantity,
                unit_price_minor=ln.unit_price_minor,
                discount_minor=ln.discount_minor,
            )
            for no, ln in numbered
        ),
        store=store,
        channel=channel,
    )


def _facts(
    session: Session,
    basket: domain.Basket,
    member: Member | None,
    at: datetime,
    used: set[str],
) -> dict[str, Any]:
    _v, programme = programmes.active(session)
    facts: dict[str, Any] = {
        "order.amount_minor": sum(ln.net_minor for ln in basket.lines),
        "order.lines": len(basket.lines),
        "order.categories": sorted({ln.category for ln in basket.lines if ln.category}),
        "order.skus": sorted({ln.sku for ln in basket.lines}),
        "order.channel": basket.channel,
        "order.store": basket.store,
        **time_facts(programme.tz, at),
    }
    if member is not None:
        facts["member.tier"] = member.tier_code
        if "member.tags" in used:
            facts["member.tags"] = members.tags(session, member.id)
        if used & set(RFM_FACTS):  # the nightly RFM row (insights.rfm)
            facts.update(members.rfm_facts(session, member.id, programme.tiers.rfm_weights))
    return facts


@dataclass(frozen=True)
class _Loaded:
    candidates: list[domain.Candidate]
    rows: dict[str, CouponCode]
    templates: dict[int, CouponTemplate]
    used_fields: set[str]


def _load(session: Session, codes: Sequence[str], member: Member | None, at: datetime) -> _Loaded:
    norm = [domain.normalise(c) for c in codes]
    rows = {
        r.code: r for r in session.scalars(select(CouponCode).where(CouponCode.code.in_(set(norm))))
    }
    tids = {r.template_id for r in rows.values()}
    templates = {
        t.id: t for t in session.scalars(select(CouponTemplate).where(CouponTemplate.id.in_(tids)))
    }
    member_uses: dict[int, int] = {}
    if member is not None and tids:
        member_uses = {
            u.template_id: u.uses
            for u in session.scalars(
                select(CouponMemberUse).where(
                    CouponMemberUse.member_id == member.id,
                    CouponMemberUse.template_id.in_(tids),
                )
            )
        }
    tiers = _tier_codes(session) if any(t.rules.get("when") for t in templates.values()) else []
    rules: dict[int, domain.Rules] = {}
    broken: set[int] = set()  # a `when:` the programme no longer parses (a tier removed)
    for tid, t in templates.items():
        try:
            rules[tid] = rules_of(t, tiers)
        except conditions.ConditionError:
            rules[tid] = rules_of(t, tiers, with_condition=False)
            broken.add(tid)
    used: set[str] = set()
    for r in rules.values():
        if r.when is not None:
            used |= conditions.fields_used(r.when)
    out: list[domain.Candidate] = []
    for c in norm:
        row = rows.get(c)
        if row is None:
            out.append(domain.Candidate(c, "", None, domain.UNKNOWN))
            continue
        t = templates[row.template_id]
        per_member = t.rules.get("limit_per_member")
        left = domain.Left(
            uses=None if t.limit_total is None else t.limit_total - t.uses,
            member_uses=None
            if per_member is None or member is None
            else int(per_member) - member_uses.get(t.id, 0),
            budget_minor=None if t.budget_minor is None else t.budget_minor - t.spent_minor,
        )
        blocked = domain.CONDITION if t.id in broken else _blocked(row, t, member, at)
        out.append(domain.Candidate(c, t.code, rules[t.id], blocked, left))
    return _Loaded(out, rows, templates, used)


def _blocked(row: CouponCode, t: CouponTemplate, member: Member | None, at: datetime) -> str | None:
    if row.voided_at is not None:
        return domain.VOIDED
    if not t.active:
        return domain.INACTIVE
    if row.valid_from is not None and row.valid_from > at:
        return domain.NOT_STARTED
    if row.expires_at is not None and row.expires_at <= at:
        return domain.EXPIRED
    if row.member_id is not None:
        if member is None:
            return domain.MEMBER_REQUIRED
        if row.member_id != member.id:
            return domain.NOT_YOURS
    if t.rules.get("limit_per_member") is not None and member is None:
        return domain.MEMBER_REQUIRED
    if row.uses >= int(t.rules.get("limit_per_code", 1)):
        return domain.USED_UP
    return None


# --------------------------------------------------------------------------- guessing


def _window(now: datetime) -> datetime:
    span = int(GUESS_WINDOW.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // span * span, tz=now.tzinfo)


def _subjects(actor: Actor, member: Member | None) -> list[str]:
    out = [f"key:{actor.principal}"[:191]]
    if member is not None:
        out.append(f"member:{member.id}")
    return out


def _check_throttle(session: Session, subjects: list[str], now: datetime) -> None:
    q = select(func.coalesce(func.max(CouponGuess.failures), 0)).where(
        CouponGuess.subject.in_(subjects), CouponGuess.window_start == _window(now)
    )
    if int(session.scalar(q) or 0) >= GUESS_LIMIT:
        raise GuessThrottled(
            f"More than {GUESS_LIMIT} unknown codes in {int(GUESS_WINDOW.total_seconds() // 60)} "
            "minutes; try again later.",
            extra={"retry_after_seconds": int(GUESS_WINDOW.total_seconds())},
        )


def _count_guesses(session: Session, subjects: list[str], n: int, now: datetime) -> None:
    w = _window(now)
    for subject in subjects:
        values = {"subject": subject, "window_start": w, "failures": n}
        if session.get_bind().dialect.name == "postgresql":
            stmt: Any = postgresql.insert(CouponGuess).values(**values)
        else:
            stmt = sqlite.insert(CouponGuess).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["subject", "window_start"],
            set_={"failures": CouponGuess.failures + n},
        )
        session.execute(stmt)
    # old windows are no longer read: drop them (small table)
    session.execute(delete(CouponGuess).where(CouponGuess.window_start < w - GUESS_WINDOW))


# --------------------------------------------------------------------------- validate


def _member_for(session: Session, actor: Actor, data: ValidateIn) -> Member | None:
    if data.member_id is not None:
        return members.get(session, actor, data.member_id)
    if data.member_identity is not None:
        ident = data.member_identity
        return members.get_by_identity(
            session, actor, ident.kind, ident.value, field="member_identity.value"
        )
    return None


def validate(session: Session, actor: Actor, data: ValidateIn) -> ValidateOut:
    """Whether each code applies to the basket, why not, and the discount per line.
    Redeems nothing; unknown codes count against the caller's (and member's) guesses."""
    require(actor, ORDER_READ)
    now = utcnow()
    at = data.occurred_at.astimezone(now.tzinfo) if data.occurred_at else now
    store = org.store_in_scope(session, actor, data.store)
    member = _member_for(session, actor, data)
    subjects = _subjects(actor, member)
    _check_throttle(session, subjects, now)
    numbered = [
        (ln.line_no if ln.line_no is not None else i + 1, ln) for i, ln in enumerate(data.lines)
    ]
    basket = _basket(numbered, store.code, data.channel)
    loaded = _load(session, data.codes, member, at)
    outcome = domain.apply(
        basket, loaded.candidates, _facts(session, basket, member, at, loaded.used_fields)
    )
    unknown = sum(1 for r in outcome.results if r.reason == domain.UNKNOWN)
    if unknown:
        _count_guesses(session, subjects, unknown, now)
    return ValidateOut(
        valid=not outcome.refused,
        discount_minor=outcome.discount_minor,
        amount_due_minor=sum(ln.net_minor for ln in basket.lines) - outcome.discount_minor,
        codes=[
            CodeResultOut(
                code=r.code,
                template=r.template,
                valid=r.valid,
                reason=r.reason,
                discount_minor=r.discount_minor,
                lines=[LineDiscountOut(line_no=k, discount_minor=v) for k, v in r.lines.items()],
            )
            for r in outcome.results
        ],
        lines=[
            BasketLineOut(
                line_no=ln.line_no,
                net_minor=ln.net_minor,
                discount_minor=outcome.line_discounts.get(ln.line_no, 0),
                due_minor=ln.net_minor - outcome.line_discounts.get(ln.line_no, 0),
            )
            for ln in basket.lines
        ],
    )


# --------------------------------------------------------------------------- redeem with an order


def _refuse(outcome: domain.Outcome) -> None:
    refused = outcome.refused
    if not refused:
        return
    fields = [
        FieldError(f"coupons.{i}", f"{r.code}: {r.reason}", r.reason or "invalid")
        for i, r in enumerate(outcome.results)
        if not r.valid
    ]
    if all(r.reason in domain.CONFLICTS for r in refused):
        cls = CONFLICT_BY_REASON[refused[0].reason or domain.USED_UP]
        raise cls(f"Coupon {refused[0].code} can no longer be used.", fields)
    raise CouponInvalid("A coupon does not apply to this order.", fields)


def redeem_for_order(
    session: Session,
    actor: Actor,
    data: OrderLike,
    *,
    member: Member | None,
    store: OrgUnit,
    at: datetime,
) -> int:
    """Redeem the order's codes in the order's transaction; the discount in minor units.

    Called by ``order.service.record`` after it holds the member's account lock and knows
    the order is new. Any code that does not apply refuses the whole order (422
    ``coupon_invalid`` naming each code's reason; 409 ``coupon_used`` … when a limit was
    reached, also by a concurrent checkout). The order's ``coupon_minor`` must include
    the discount (so its paid amount and its points reflect it)."""
    store_id, store_code, occurred_at = store.id, store.code, at
    if not data.coupons:
        return 0
    now = utcnow()
    _check_throttle(session, _subjects(actor, member), now)
    basket = _basket(data.numbered(), store_code, data.channel)
    loaded = _load(session, data.coupons, member, occurred_at)
    outcome = domain.apply(
        basket, loaded.candidates, _facts(session, basket, member, occurred_at, loaded.used_fields)
    )
    _refuse(outcome)
    if data.coupon_minor < outcome.discount_minor:
        raise CouponInvalid(
            f"The coupons take off {outcome.discount_minor}: coupon_minor must include it.",
            [
                FieldError(
                    "coupon_minor",
                    f"must be at least {outcome.discount_minor} (the coupons' discount)",
                    "coupon_discount_missing",
                )
            ],
        )
    applied = [(loaded.rows[r.code], r) for r in outcome.results]
    # Conditional updates, codes by id, then per-member counters, then templates by id.
    for row, r in sorted(applied, key=lambda x: x[0].id):
        t = loaded.templates[row.template_id]
        res = session.execute(
            update(CouponCode)
            .where(CouponCode.id == row.id, CouponCode.uses < int(t.rules.get("limit_per_code", 1)))
            .values(uses=CouponCode.uses + 1)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise CONFLICT_BY_REASON[domain.USED_UP](
                f"Coupon {r.code} has been used.",
                [FieldError("coupons", f"{r.code}: {domain.USED_UP}", domain.USED_UP)],
            )
    per_template: dict[int, list[int]] = defaultdict(list)
    for row, r in applied:
        per_template[row.template_id].append(r.discount_minor)
    if member is not None:
        for tid in sorted(per_template):
            limit = loaded.templates[tid].rules.get("limit_per_member")
            if limit is None:
                continue
            _bump_member_use(session, tid, member.id, len(per_template[tid]), int(limit))
    for tid in sorted(per_template):
        t = loaded.templates[tid]
        n, spend = len(per_template[tid]), sum(per_template[tid])
        res = session.execute(
            update(CouponTemplate)
            .where(
                CouponTemplate.id == tid,
                or_(
                    CouponTemplate.limit_total.is_(None),
                    CouponTemplate.uses + n <= CouponTemplate.limit_total,
                ),
                or_(
                    CouponTemplate.budget_minor.is_(None),
                    CouponTemplate.spent_minor + spend <= CouponTemplate.budget_minor,
                ),
            )
            .values(uses=CouponTemplate.uses + n, spent_minor=CouponTemplate.spent_minor + spend)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            cur = session.execute(
                select(CouponTemplate.uses, CouponTemplate.limit_total).where(
                    CouponTemplate.id == tid
                )
            ).one()
            reason = (
                domain.TOTAL_LIMIT
                if cur.limit_total is not None and cur.uses + n > cur.limit_total
                else domain.BUDGET
            )
            raise CONFLICT_BY_REASON[reason](
                f"Coupon template {t.code} cannot take this use.",
                [FieldError("coupons", f"{t.code}: {reason}", reason)],
            )
    for row, r in applied:
        session.add(
            CouponRedemption(
                code_id=row.id,
                template_id=row.template_id,
                member_id=member.id if member else None,
                order_store_id=store_id,
                order_external_id=data.external_id,
                discount_minor=r.discount_minor,
                line_discounts={str(k): v for k, v in r.lines.items()},
                status="redeemed",
                redeemed_at=now,
                restored_at=None,
            )
        )
    session.flush()
    events.emit(
        session,
        "coupon.redeemed",
        {
            "member_id": member.id if member else None,
            "store": store_code,
            "order_external_id": data.external_id,
            "templates": sorted({r.template or "" for _row, r in applied}),
            "discount_minor": outcome.discount_minor,
        },
        member_id=member.id if member else None,
        org_path=member.org_path if member else None,
    )
    return outcome.discount_minor


def _bump_member_use(
    session: Session, template_id: int, member_id: int, n: int, limit: int
) -> None:
    values = {"template_id": template_id, "member_id": member_id, "uses": 0}
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = postgresql.insert(CouponMemberUse).values(**values)
    else:
        stmt = sqlite.insert(CouponMemberUse).values(**values)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["template_id", "member_id"]))
    res = session.execute(
        update(CouponMemberUse)
        .where(
            CouponMemberUse.template_id == template_id,
            CouponMemberUse.member_id == member_id,
            CouponMemberUse.uses + n <= limit,
        )
        .values(uses=CouponMemberUse.uses + n)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise CONFLICT_BY_REASON[domain.MEMBER_LIMIT](
            "The member has used this coupon as often as allowed.",
            [FieldError("coupons", domain.MEMBER_LIMIT, domain.MEMBER_LIMIT)],
        )


def order_discount(session: Session, store_id: int, external_id: str) -> int:
    """What codes took off a recorded order (0 without codes)."""
    q = select(func.coalesce(func.sum(CouponRedemption.discount_minor), 0)).where(
        CouponRedemption.order_store_id == store_id,
        CouponRedemption.order_external_id == external_id,
    )
    return int(session.scalar(q) or 0)


def restore_for_return(session: Session, order: Order) -> int:
    """Give back the uses of a fully returned order's coupons where the template says so
    (``restore_on_return``); the number of codes restored. Called by
    ``order.service.record_return`` in the return's transaction, after the order's lock."""
    store_id, external_id = order.store_id, order.external_id
    member_id, org_path = order.member_id, order.org_path
    reds = list(
        session.scalars(
            select(CouponRedemption)
            .where(
                CouponRedemption.order_store_id == store_id,
                CouponRedemption.order_external_id == external_id,
                CouponRedemption.status == "redeemed",
            )
            .order_by(CouponRedemption.code_id)
        )
    )
    if not reds:
        return 0
    templates = {
        t.id: t
        for t in session.scalars(
            select(CouponTemplate).where(CouponTemplate.id.in_({r.template_id for r in reds}))
        )
    }
    reds = [r for r in reds if templates[r.template_id].rules.get("restore_on_return", True)]
    if not reds:
        return 0
    now = utcnow()
    for r in reds:
        session.execute(
            update(CouponCode)
            .where(CouponCode.id == r.code_id, CouponCode.uses > 0)
            .values(uses=CouponCode.uses - 1)
            .execution_options(synchronize_session=False)
        )
    per: dict[int, list[int]] = defaultdict(list)
    for r in reds:
        per[r.template_id].append(r.discount_minor)
    if member_id is not None:
        for tid in sorted(per):
            session.execute(
                update(CouponMemberUse)
                .where(
                    CouponMemberUse.template_id == tid,
                    CouponMemberUse.member_id == member_id,
                    CouponMemberUse.uses >= len(per[tid]),
                )
                .values(uses=CouponMemberUse.uses - len(per[tid]))
                .execution_options(synchronize_session=False)
            )
    for tid in sorted(per):
        session.execute(
            update(CouponTemplate)
            .where(CouponTemplate.id == tid)
            .values(
                uses=CouponTemplate.uses - len(per[tid]),
                spent_minor=CouponTemplate.spent_minor - sum(per[tid]),
            )
            .execution_options(synchronize_session=False)
        )
    for r in reds:
        r.status, r.restored_at = "restored", now
    session.flush()
    events.emit(
        session,
        "coupon.restored",
        {
            "member_id": member_id,
            "order_external_id": external_id,
            "templates": sorted({templates[r.template_id].code for r in reds}),
            "discount_minor": sum(r.discount_minor for r in reds),
        },
        member_id=member_id,
        org_path=org_path,
    )
    return len(reds)


def redemptions_of_order(
    session: Session, store_id: int, external_id: str
) -> list[CouponRedemption]:
    q = select(CouponRedemption).where(
        CouponRedemption.order_store_id == store_id,
        CouponRedemption.order_external_id == external_id,
    )
    return list(session.scalars(q.order_by(CouponRedemption.id)))
