"""Order and return payloads."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from loyalist.kit.db import MAX_INT4
from loyalist.kit.wire import InstantIn, Timestamp

MAX_MINOR = 10**12
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _sane_instant(value: dt.datetime) -> dt.datetime:
    """An aware instant that UTC can represent, no earlier than 1970."""
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError("is out of range") from exc
    if utc < EARLIEST:
        raise ValueError("must not be before 1970-01-01T00:00:00Z")
    return value


Instant = Annotated[InstantIn, AfterValidator(_sane_instant)]


class Strict(BaseModel):
    """An input: unknown fields refused, no coercion (``true`` or ``"5"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LineIn(Strict):
    line_no: int | None = Field(default=None, ge=1, le=10_000)
    sku: str = Field(min_length=1, max_length=64)
    category: str | None = Field(default=None, min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=100_000)
    unit_price_minor: int = Field(ge=0, le=MAX_MINOR)
    discount_minor: int = Field(default=0, ge=0, le=MAX_MINOR)

    @model_validator(mode="after")
    def _discount(self) -> LineIn:
        if self.discount_minor > self.quantity * self.unit_price_minor:
            raise ValueError("discount_minor exceeds quantity × unit_price_minor")
        return self


class MemberIdentityIn(Strict):
    """An exact identity of the member (chains: reaches a member of any store)."""

    kind: Literal["phone", "email", "app_id", "wechat_openid", "pos_card"]
    value: str = Field(min_length=1, max_length=254)


class OrderCreate(Strict):
    external_id: str = Field(min_length=1, max_length=128)
    member_id: int | None = Field(default=None, ge=1, le=MAX_INT4)
    member_identity: MemberIdentityIn | None = None
    store: str = Field(min_length=1, max_length=64)
    channel: str = Field(default="pos", min_length=1, max_length=32)
    occurred_at: Instant
    currency: str = Field(default="CNY", min_length=3, max_length=3)
    amount_paid_minor: int = Field(ge=0, le=MAX_MINOR)
    points_paid: int = Field(default=0, ge=0, le=10**9)
    # The money the points paid covered (default: anything from 0 to their programme value).
    points_paid_minor: int | None = Field(default=None, ge=0, le=MAX_MINOR)
    # Order-level coupons and vouchers, in minor units (line discounts go on the lines).
    coupon_minor: int = Field(default=0, ge=0, le=MAX_MINOR)
    lines: list[LineIn] = Field(min_length=1, max_length=500)
    # Coupon codes redeemed with the order (issue 12): coupon_minor must include what they
    # take off (POST /v1/coupons/validate tells it); they are used in this transaction.
    coupons: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=10
    )
    # Fraud controls (issue 13): the device the order was placed from, counted per device.
    device_id: str | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _lines(self) -> OrderCreate:
        numbers = [
            ln.line_no if ln.line_no is not None else i + 1 for i, ln in enumerate(self.lines)
        ]
        if len(set(numbers)) != len(numbers):
            raise ValueError("line_no values must be unique")
        if sum(ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in self.lines) > (
            MAX_MINOR
        ):
            raise ValueError(f"the lines add up to more than {MAX_MINOR} minor units")
        if self.member_id is not None and self.member_identity is not None:
            raise ValueError("give member_id or member_identity, not both")
        if self.points_paid and self.member_id is None and self.member_identity is None:
            raise ValueError("points_paid needs a member_id")
        if self.points_paid_minor and not self.points_paid:
            raise ValueError("points_paid_minor needs points_paid")
        return self

    def net_minor(self) -> int:
        return sum(ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in self.lines)

    def numbered(self) -> list[tuple[int, LineIn]]:
        return [
            (ln.line_no if ln.line_no is not None else i + 1, ln) for i, ln in enumerate(self.lines)
        ]


class ReturnLineIn(Strict):
    line_no: int = Field(ge=1)
    quantity: int = Field(ge=1, le=100_000)


class ReturnCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "description": "Either the whole order (`full: true`, no lines) or the lines "
            "returned (`lines`, `full` false or absent).",
            "anyOf": [
                {
                    "properties": {"full": {"const": True}, "lines": {"maxItems": 0}},
                    "required": ["full"],
                },
                {
                    "properties": {"full": {"const": False}, "lines": {"minItems": 1}},
                    "required": ["lines"],
                },
            ],
        }
    )

    return_id: str = Field(min_length=1, max_length=128)
    full: bool = False
    lines: list[ReturnLineIn] = Field(default_factory=list, max_length=500)
    occurred_at: Instant | None = None

    @model_validator(mode="after")
    def _what(self) -> ReturnCreate:
        if self.full == bool(self.lines):
            raise ValueError("give either full=true or the lines returned, not both")
        nos = [ln.line_no for ln in self.lines]
        if len(set(nos)) != len(nos):
            raise ValueError("each line_no may appear once")
        return self


class DryRunIn(Strict):
    order: OrderCreate
    tier: str | None = None
    # A paid membership (pass code) the sample member holds: its multiplier applies.
    pass_code: str | None = Field(default=None, min_length=1, max_length=64)
    programme_version: int | None = Field(default=None, ge=1, le=MAX_INT4)
    earned_today: int = Field(default=0, ge=0)
    earned_lifetime: int = Field(default=0, ge=0)
    # Sample member fields for ``when:`` conditions, without the ``member.`` prefix:
    # {"tags": ["vip"], "joined_days": 40, "consent": {"sms": true}}.
    member: dict[str, Any] = Field(default_factory=dict, max_length=20)


def to_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


class QuoteIn(Strict):
    """A basket to price: no writes, nothing recorded."""

    member_id: int | None = Field(default=None, ge=1, le=MAX_INT4)
    member_identity: MemberIdentityIn | None = None
    store: str = Field(min_length=1, max_length=64)
    channel: str = Field(default="pos", min_length=1, max_length=32)
    occurred_at: Instant | None = None  # default: now
    currency: str = Field(default="CNY", min_length=3, max_length=3)
    coupon_minor: int = Field(default=0, ge=0, le=MAX_MINOR)
    lines: list[LineIn] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _lines(self) -> QuoteIn:
        numbers = [
            ln.line_no if ln.line_no is not None else i + 1 for i, ln in enumerate(self.lines)
        ]
        if len(set(numbers)) != len(numbers):
            raise ValueError("line_no values must be unique")
        if self.member_id is not None and self.member_identity is not None:
            raise ValueError("give member_id or member_identity, not both")
        return self

    def numbered(self) -> list[tuple[int, LineIn]]:
        return [
            (ln.line_no if ln.line_no is not None else i + 1, ln) for i, ln in enumerate(self.lines)
        ]


class QuoteLineOut(BaseModel):
    line_no: int
    sku: str
    category: str | None
    quantity: int
    unit_price_minor: int
    discount_minor: int = Field(description="The line's own discount, as sent.")
    tier_discount_minor: int = Field(description="The member's tier discount on this line.")
    net_minor: int = Field(description="What the line costs after both discounts.")
    points: int = Field(description="Points this line would earn.")
    counts_toward_tier: bool


class QuoteRuleOut(BaseModel):
    rule: str
    points: int
    lines: list[int]
    description: str


class QuoteTotalsOut(BaseModel):
    gross_minor: int = Field(description="Sum of quantity × unit price.")
    line_discount_minor: int
    tier_discount_minor: int
    coupon_minor: int
    amount_due_minor: int = Field(description="What the member pays (before points).")
    points_earned: int
    tier_qualifying_minor: int = Field(
        description="The part of the amount due counting toward tiers."
    )


class QuoteTierOut(BaseModel):
    code: str
    name: str
    discount_rate: str = Field(description='Decimal fraction, e.g. "0.05" for 5 %.')


class QuoteOut(BaseModel):
    member_id: int | None
    tier: QuoteTierOut | None
    programme_version: int
    currency: str
    lines: list[QuoteLineOut]
    points: list[QuoteRuleOut]
    totals: QuoteTotalsOut


# --- Answers -----------------------------------------------------------------------------


class OrderPoints(BaseModel):
    earned: int
    status: Literal["none", "pending", "available", "spent", "expired", "clawed_back"] = Field(
        description="what the ledger holds for the order's own lot"
    )
    open: int = Field(description="points still in the order's lot")
    expired: int = Field(description="points of the order's lot that expired")
    available_at: Timestamp | None
    breakdown: list[dict[str, Any]] = Field(description="points per rule, explained")
    clawed_back: int
    paid_restored: int


class OrderSummary(BaseModel):
    """An order as lists show it."""

    id: int
    external_id: str
    member_id: int | None
    store_id: int
    channel: str
    occurred_at: Timestamp
    currency: str
    gross_minor: int
    amount_paid_minor: int
    points_paid: int
    points_paid_minor: int
    coupon_minor: int
    tier_qualifying_minor: int = Field(description="what counts toward tiers, net of returns")
    status: str
    points: OrderPoints
    refunded_minor: int
    programme_version: int | None


class OrderLineOut(BaseModel):
    line_no: int
    sku: str
    category: str | None
    quantity: int
    unit_price_minor: int
    discount_minor: int
    net_minor: int
    returned_quantity: int
    points: int


class ReturnOut(BaseModel):
    id: int
    return_id: str
    lines: list[dict[str, Any]]
    refund_minor: int
    points_clawed: int
    points_waived: int
    points_restored: int
    points_expired: int = Field(description="returned lines' points that had already expired")
    occurred_at: Timestamp


class OrderDetail(OrderSummary):
    """An order with its lines, points per line and returns."""

    lines: list[OrderLineOut]
    returns: list[ReturnOut]


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None


class ReturnAnswer(ReturnOut):
    """The return recorded, and its order as it now stands."""

    order: OrderDetail


class DryRunItem(BaseModel):
    rule: str
    points: int
    lines: list[int]
    description: str


class DryRunCondition(BaseModel):
    """A rule's or campaign's ``when:`` condition, explained clause by clause."""

    rule: str
    name: str
    passed: bool
    explanation: dict[str, Any] = Field(description="the clause tree with actual values")


class DryRunOut(BaseModel):
    """What the rules would give the sample order."""

    programme_version: int
    points: int
    earnable_minor: int
    breakdown: list[DryRunItem]
    line_points: dict[str, int]
    conditions: list[DryRunCondition] = Field(
        description="each rule's and campaign's when: condition, clause by clause"
    )
