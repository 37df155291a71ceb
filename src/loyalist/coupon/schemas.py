"""Coupon payloads: templates, batches, issuance, validation, a member's coupons."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loyalist.coupon.domain import ALPHABET, MAX_CODES_PER_ORDER, Kind
from loyalist.kit.db import MAX_INT4
from loyalist.kit.wire import InstantIn, Timestamp

MAX_MINOR = 10**12
Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class Strict(BaseModel):
    """An input: unknown fields refused, no coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TemplateCreate(Strict):
    """A coupon template. ``code`` names it for ever; sending the same template again is a
    no-op (200), another with the same code a conflict."""

    code: str = Name
    name: str = Field(min_length=1, max_length=128, description="shown to members (zh-CN)")
    name_en: str | None = Field(default=None, max_length=128)
    kind: Kind = Field(strict=False)
    amount_minor: int = Field(default=0, ge=0, le=MAX_MINOR, description="amount_off")
    basis_points: int = Field(
        default=0, ge=0, le=10_000, description="percent_off: 1250 = 12.5 % off (8.75 折)"
    )
    cap_minor: int | None = Field(default=None, ge=1, le=MAX_MINOR)
    free_quantity: int = Field(default=1, ge=1, le=100)
    min_spend_minor: int = Field(default=0, ge=0, le=MAX_MINOR)
    skus: list[str] = Field(default_factory=list, max_length=500)
    categories: list[str] = Field(default_factory=list, max_length=100)
    stores: list[str] = Field(default_factory=list, max_length=500)
    channels: list[str] = Field(default_factory=list, max_length=20)
    when: dict[str, Any] | None = Field(
        default=None, description="a condition (all/any/not over order, member, time fields)"
    )
    valid_from: InstantIn | None = None
    valid_until: InstantIn | None = None
    valid_days: int | None = Field(
        default=None, ge=1, le=3650, description="days after issue (programme-local days)"
    )
    limit_per_code: int = Field(default=1, ge=1, le=1_000_000)
    limit_per_member: int | None = Field(default=None, ge=1, le=1_000_000)
    limit_total: int | None = Field(default=None, ge=1, le=10**12)
    budget_minor: int | None = Field(default=None, ge=1, le=MAX_MINOR)
    priority: int = Field(default=100, ge=0, le=10_000, description="lower applies first")
    exclusive: bool = False
    group: str = Field(default="general", min_length=1, max_length=32)
    stacks_with: list[str] = Field(default_factory=list, max_length=20)
    max_per_order: int = Field(default=1, ge=1, le=MAX_CODES_PER_ORDER)
    restore_on_return: bool = True
    active: bool = True

    @model_validator(mode="after")
    def _kind(self) -> TemplateCreate:
        if self.kind is Kind.AMOUNT_OFF and self.amount_minor <= 0:
            raise ValueError("amount_off needs amount_minor > 0")
        if self.kind is Kind.PERCENT_OFF and not 0 < self.basis_points <= 10_000:
            raise ValueError("percent_off needs basis_points between 1 and 10000")
        if self.kind is Kind.FREE_ITEM and not (self.skus or self.categories):
            raise ValueError("free_item needs skus or categories (which item is free)")
        if self.kind is not Kind.AMOUNT_OFF and self.amount_minor:
            raise ValueError("amount_minor is for amount_off")
        if self.kind is not Kind.PERCENT_OFF and self.basis_points:
            raise ValueError("basis_points is for percent_off")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.exclusive and self.stacks_with:
            raise ValueError("an exclusive template stacks with nothing: drop stacks_with")
        return self

    def rules_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"code", "name", "name_en", "active"})


class TemplateOut(BaseModel):
    code: str
    name: str
    name_en: str | None
    active: bool
    rules: dict[str, Any]
    issued: int
    uses: int
    spent_minor: int
    budget_minor: int | None
    limit_total: int | None


class TemplatePage(BaseModel):
    items: list[TemplateOut]


class BatchCreate(Strict):
    """Codes for a template: ``count`` generated (a background job above 5,000), or
    ``codes`` imported (all or nothing)."""

    external_id: str = Name
    template: str = Name
    count: int | None = Field(default=None, ge=1, le=10_000_000)
    codes: list[str] | None = Field(default=None, min_length=1, max_length=10_000)
    prefix: str = Field(default="", max_length=16)
    length: int = Field(default=10, ge=1, le=32)
    alphabet: str = Field(default=ALPHABET, min_length=2, max_length=64)

    @model_validator(mode="after")
    def _what(self) -> BatchCreate:
        if (self.count is None) == (self.codes is None):
            raise ValueError("give count (to generate) or codes (to import), not both")
        return self


class BatchOut(BaseModel):
    id: int
    external_id: str
    template: str
    kind: Literal["generated", "imported"]
    requested: int
    generated: int
    status: Literal["pending", "done"]
    created_at: Timestamp
    finished_at: Timestamp | None


class BatchCodes(BaseModel):
    items: list[str]
    next_cursor: str | None


class IssueIn(Strict):
    template: str = Name
    reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="the cause (e.g. a campaign id): one coupon per member and reference",
    )


CouponStatus = Literal["available", "used", "expired", "voided", "not_started"]


class CouponOut(BaseModel):
    code: str
    template: str
    name: str
    name_en: str | None
    kind: str
    summary: dict[str, Any]
    status: CouponStatus
    uses: int
    uses_allowed: int
    valid_from: Timestamp | None
    expires_at: Timestamp | None
    member_id: int | None
    source: str
    issued_at: Timestamp


class CouponPage(BaseModel):
    items: list[CouponOut]


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


class IdentityIn(Strict):
    kind: Literal["phone", "email", "app_id", "wechat_openid", "pos_card"]
    value: str = Field(min_length=1, max_length=254)


CodeText = Field(min_length=1, max_length=40)


class ValidateIn(Strict):
    """A basket and the codes presented: nothing is redeemed."""

    codes: list[str] = Field(min_length=1, max_length=MAX_CODES_PER_ORDER)
    member_id: int | None = Field(default=None, ge=1, le=MAX_INT4)
    member_identity: IdentityIn | None = None
    store: str = Field(min_length=1, max_length=64)
    channel: str = Field(default="pos", min_length=1, max_length=32)
    occurred_at: InstantIn | None = None
    lines: list[LineIn] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _check(self) -> ValidateIn:
        if any(not 1 <= len(c) <= 40 for c in self.codes):
            raise ValueError("each code is 1 to 40 characters")
        nos = [ln.line_no if ln.line_no is not None else i + 1 for i, ln in enumerate(self.lines)]
        if len(set(nos)) != len(nos):
            raise ValueError("line_no values must be unique")
        if self.member_id is not None and self.member_identity is not None:
            raise ValueError("give member_id or member_identity, not both")
        return self


class LineDiscountOut(BaseModel):
    line_no: int
    discount_minor: int


class CodeResultOut(BaseModel):
    code: str
    template: str | None
    valid: bool
    reason: str | None = Field(description="why not (a stable code), null when valid")
    discount_minor: int
    lines: list[LineDiscountOut]


class BasketLineOut(BaseModel):
    line_no: int
    net_minor: int
    discount_minor: int
    due_minor: int


class ValidateOut(BaseModel):
    valid: bool = Field(description="every code applies")
    discount_minor: int
    amount_due_minor: int
    codes: list[CodeResultOut]
    lines: list[BasketLineOut]
