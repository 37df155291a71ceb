"""The programme document: tiers, earning rules, campaigns, expiry and rewards as data.

A programme is loaded from YAML or JSON, validated here in full before anything is
written, and stored as an immutable numbered version. Multipliers are decimals written as
strings ("1.5") so no float ever touches points.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from loyalist.kit import conditions
from loyalist.kit.money import MINOR_UNITS
from loyalist.kit.wire import Timestamp
from loyalist.programme.conditions import catalogue

Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
Multiplier = Annotated[Decimal, Field(ge=Decimal("0"), le=Decimal("100"), decimal_places=4)]
Ratio = Annotated[Decimal, Field(gt=Decimal("0"), le=Decimal("100"), decimal_places=4)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rounding(StrEnum):
    FLOOR = "floor"
    HALF_UP = "half_up"
    CEIL = "ceil"


class ExpiryKind(StrEnum):
    NEVER = "never"
    ROLLING_MONTHS = "rolling_months"  # N months after the points were earned
    END_OF_YEAR = "end_of_year"  # end of the Nth calendar year after the year earned
    END_OF_MONTH = "end_of_month"  # end of the Nth calendar month after the month earned


class NegativeBalancePolicy(StrEnum):
    CARRY_DEBT = "carry_debt"  # clawback takes what it must; the shortfall is a debt
    CAP_AT_ZERO = "cap_at_zero"  # clawback takes at most what is left; the rest is waived


class TierMetric(StrEnum):
    SPEND = "spend"  # amount paid, minor units
    ORDERS = "orders"
    POINTS = "points"  # points earned
    ACTIVE_DAYS = "active_days"  # distinct programme-local days with an order
    RFM = "rfm"  # weighted RFM score from the nightly member_rfm table (tiers.rfm_weights)


class EvaluationPeriod(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    HALF_YEARLY = "half_yearly"
    YEARLY = "yearly"


class Expiry(Strict):
    kind: ExpiryKind = ExpiryKind.ROLLING_MONTHS
    months: int | None = Field(default=None, ge=1, le=240)
    years: int | None = Field(default=None, ge=0, le=20)

    @model_validator(mode="after")
    def _amount_present(self) -> Expiry:
        if (
            self.kind in (ExpiryKind.ROLLING_MONTHS, ExpiryKind.END_OF_MONTH)
            and self.months is None
        ):
            raise ValueError(f"expiry kind {self.kind.value} needs 'months'")
        if self.kind is ExpiryKind.END_OF_YEAR and self.years is None:
            raise ValueError("expiry kind end_of_year needs 'years'")
        return self


class PointsPolicy(Strict):
    pending_days: int = Field(default=0, ge=0, le=365)
    rounding: Rounding = Rounding.FLOOR
    expiry: Expiry = Expiry(kind=ExpiryKind.ROLLING_MONTHS, months=36)
    reminder_days: list[Annotated[int, Field(ge=1, le=365)]] = Field(default_factory=lambda: [30])
    negative_balance: NegativeBalancePolicy = NegativeBalancePolicy.CARRY_DEBT
    # Money value of one point (minor units per 100 points), for liability reporting.
    value_minor_per_100_points: int = Field(default=100, ge=0)


class Benefits(Strict):
    points_multiplier: Multiplier = Decimal("1")
    discount_rate: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0")
    free_shipping: bool = False
    priority_service: bool = False
    birthday_gift: bool = False
    exclusive_rewards: bool = False


class Tier(Strict):
    code: Code
    name: str = Field(min_length=1, max_length=64)
    name_en: str | None = None
    threshold: int = Field(ge=0)
    benefits: Benefits = Benefits()
    # How long a tier reached by upgrade lasts before it must be re-qualified, in months.
    validity_months: int | None = Field(default=None, ge=1, le=120)


class RfmWeights(Strict):
    """Weights of the R, F and M quintile scores (1..5 each) in a tier's RFM score:
    ``score = r * R + f * F + m * M``; tier thresholds are minimum scores."""

    r: int = Field(default=1, ge=0, le=100)
    f: int = Field(default=1, ge=0, le=100)
    m: int = Field(default=1, ge=0, le=100)

    @model_validator(mode="after")
    def _some(self) -> RfmWeights:
        if self.r + self.f + self.m == 0:
            raise ValueError("at least one RFM weight must be above 0")
        return self

    def score(self, r: int, f: int, m: int) -> int:
        return self.r * r + self.f * f + self.m * m

    @property
    def maximum(self) -> int:
        return 5 * (self.r + self.f + self.m)


class Tiers(Strict):
    metric: TierMetric = TierMetric.SPEND
    window_months: int = Field(default=12, ge=1, le=60)
    evaluation: EvaluationPeriod = EvaluationPeriod.QUARTERLY
    downgrade_after_periods: int = Field(default=2, ge=1, le=12)
    levels: list[Tier] = Field(min_length=3, max_length=7)
    # Line categories whose paid amount does not count toward tier qualification (gift cards
    # are money kept, not spent). An empty list counts every line.
    excluded_categories: list[str] = Field(default_factory=lambda: ["gift_card"], max_length=100)
    # metric "rfm": the weights of the R, F, M scores; thresholds are minimum weighted scores.
    rfm_weights: RfmWeights = RfmWeights()

    @model_validator(mode="after")
    def _ordered(self) -> Tiers:
        codes = [t.code for t in self.levels]
        if len(set(codes)) != len(codes):
            raise ValueError("tier codes must be unique")
        if self.levels[0].threshold != 0:
            raise ValueError("the first tier must have threshold 0")
        thresholds = [t.threshold for t in self.levels]
        if any(b <= a for a, b in itertools.pairwise(thresholds)):
            raise ValueError("tier thresholds must strictly increase")
        if self.metric is TierMetric.RFM and thresholds[-1] > self.rfm_weights.maximum:
            raise ValueError(
                f"an RFM threshold cannot exceed the highest score {self.rfm_weights.maximum}"
            )
        return self

    def by_code(self, code: str) -> Tier:
        for t in self.levels:
            if t.code == code:
                return t
        raise KeyError(code)

    def index(self, code: str) -> int:
        return [t.code for t in self.levels].index(code)


class Match(Strict):
    """Which lines a rule applies to. Empty lists mean "any"; all given lists must match."""

    skus: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    stores: list[str] = Field(default_factory=list)  # store codes
    channels: list[str] = Field(default_factory=list)


class BaseEarning(Strict):
    points_per_unit: int = Field(default=1, ge=0, le=10_000)
    unit_minor: int = Field(default=100, ge=1)  # e.g. 1 point per 100 fen (1 yuan)


class RuleKind(StrEnum):
    MULTIPLIER = "multiplier"
    EXCLUSION = "exclusion"


class Conditional(Strict):
    """A rule or campaign with an optional ``when:`` condition (kit/conditions.py).

    ``when`` is kept as written; the programme parses it against the loyalty field
    catalogue (programme/conditions.py, tiers ordered as the programme lists them) and
    keeps the parsed tree (``Programme.condition("campaign:<code>")``).
    """

    when: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _omit_empty_shorthand(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``when`` (and a campaign's ``tiers``) appear only when given, last: documents
        stored before conditions existed keep their content and checksum."""
        data: dict[str, Any] = handler(self)
        if data.get("name_en", "") is None:  # English names appear only when given
            del data["name_en"]
        when = data.pop("when", None)
        if data.get("tiers") == []:
            del data["tiers"]
        if when is not None:
            data["when"] = when
        return data


class EarningRule(Conditional):
    code: Code
    name: str = ""  # as written (the brand's language); zh-CN pages show it
    name_en: str | None = Field(default=None, max_length=128)  # English pages, when given
    kind: RuleKind = RuleKind.MULTIPLIER
    match: Match = Match()
    multiplier: Multiplier | None = None

    @model_validator(mode="after")
    def _multiplier(self) -> EarningRule:
        if self.kind is RuleKind.MULTIPLIER and self.multiplier is None:
            raise ValueError("a multiplier rule needs 'multiplier'")
        if self.kind is RuleKind.EXCLUSION and self.multiplier is not None:
            raise ValueError("an exclusion rule takes no 'multiplier'")
        return self


class Campaign(Conditional):
    code: Code
    name: str = ""  # as written (the brand's language); zh-CN pages show it
    name_en: str | None = Field(default=None, max_length=128)  # English pages, when given
    multiplier: Multiplier = Decimal("1")
    bonus_points: int = Field(default=0, ge=0, le=1_000_000)  # flat bonus per qualifying order
    min_spend_minor: int = Field(default=0, ge=0)
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(default_factory=list)  # ISO
    tiers: list[Code] = Field(default_factory=list)  # member tier codes; empty: any member
    date_from: dt.date | None = None  # programme-local dates, inclusive
    date_to: dt.date | None = None
    match: Match = Match()

    @model_validator(mode="after")
    def _window(self) -> Campaign:
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError("date_to is before date_from")
        if self.multiplier == 1 and self.bonus_points == 0:
            raise ValueError("a campaign needs a multiplier other than 1 or bonus_points")
        return self


class Caps(Strict):
    per_order: int | None = Field(default=None, ge=0)
    per_day: int | None = Field(default=None, ge=0)  # programme-local day
    per_member: int | None = Field(default=None, ge=0)  # lifetime earned from orders


class Earning(Strict):
    base: BaseEarning = BaseEarning()
    rules: list[EarningRule] = Field(default_factory=list)
    campaigns: list[Campaign] = Field(default_factory=list)
    caps: Caps = Caps()

    @model_validator(mode="after")
    def _unique(self) -> Earning:
        codes = [r.code for r in self.rules] + [c.code for c in self.campaigns]
        if len(set(codes)) != len(codes):
            raise ValueError("rule and campaign codes must be unique")
        return self


class RewardKind(StrEnum):
    GOODS = "goods"
    COUPON = "coupon"
    SERVICE = "service"
    EXPERIENCE = "experience"
    CHARITY = "charity"
    PARTNER = "partner"


class PriceRule(Conditional):
    """One rule of a reward's dynamic price (issue 15, item 5): when every trigger it gives
    holds, the base points are multiplied by ``factor``. Triggers: the stock left (units,
    or a share of the total), the recent demand (units redeemed in the last
    ``demand_days`` programme-local days … up to now) and ``when:``, a condition on the
    member (any member field of the condition language, e.g. a tag or a stored predicted
    lifetime value); a rule with ``when:`` never applies to a price without a member."""

    code: Code
    factor: Ratio
    stock_below: int | None = Field(default=None, ge=1)
    stock_ratio_below: Decimal | None = Field(
        default=None, gt=Decimal("0"), le=Decimal("1"), decimal_places=4
    )
    demand_at_least: int | None = Field(default=None, ge=1)
    demand_days: int = Field(default=7, ge=1, le=365)

    @model_validator(mode="after")
    def _trigger(self) -> PriceRule:
        if (
            self.stock_below is None
            and self.stock_ratio_below is None
            and self.demand_at_least is None
            and self.when is None
        ):
            raise ValueError(
                "a price rule needs a trigger: stock_below, stock_ratio_below, "
                "demand_at_least or when"
            )
        return self


class Pricing(Strict):
    """A reward's floating points price: the base ``points`` times the product of the
    matching rules' factors, held within ``floor_ratio``..``ceiling_ratio`` of the base.
    A quote keeps its price for ``quote_minutes``."""

    floor_ratio: Ratio = Decimal("1")
    ceiling_ratio: Ratio = Decimal("1")
    quote_minutes: int = Field(default=30, ge=1, le=10_080)
    rules: list[PriceRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounds(self) -> Pricing:
        if self.ceiling_ratio < self.floor_ratio:
            raise ValueError("ceiling_ratio is below floor_ratio")
        codes = [r.code for r in self.rules]
        if len(set(codes)) != len(codes):
            raise ValueError("price rule codes must be unique")
        return self


class Reward(Strict):
    code: Code
    name: str = Field(min_length=1, max_length=128)
    name_en: str | None = None
    kind: RewardKind = RewardKind.GOODS
    points: int = Field(ge=1, le=100_000_000)
    cash_minor: int = Field(default=0, ge=0)
    stock: int | None = Field(default=None, ge=0)  # None: unlimited
    per_member_limit: int | None = Field(default=None, ge=1)
    min_tier: Code | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    image_url: str | None = None
    description: str = ""
    # A redeemed voucher can be collected for this many days after the day of redemption
    # (programme-local days); None: it does not expire.
    collect_within_days: int | None = Field(default=None, ge=1, le=3650)
    # coupons (issue 12): redeeming it issues a coupon of this template per unit.
    coupon_template: str | None = Field(default=None, min_length=1, max_length=64)
    # Dynamic pricing (issue 15, item 5): the points price floats within bounds of ``points``.
    pricing: Pricing | None = None

    @model_serializer(mode="wrap")
    def _omit_no_pricing(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``pricing`` appears only when given: earlier documents keep their checksum."""
        data: dict[str, Any] = handler(self)
        if data.get("pricing", 0) is None:
            del data["pricing"]
        return data

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, v: dt.datetime | None) -> dt.datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a UTC offset, e.g. 2026-01-01T00:00:00+08:00")
        return v


class Label(Strict):
    """A display name for a code the programme refers to: ``name`` as the brand writes it
    (zh-CN pages), ``name_en`` for English pages (``name`` when absent)."""

    name: str = Field(min_length=1, max_length=64)
    name_en: str | None = Field(default=None, max_length=64)


class Labels(Strict):
    """Names of the line categories and sales channels orders carry (codes such as
    ``coffee_beans`` or ``miniprogram``), so pages and rule explanations show words."""

    categories: dict[Code, Label] = Field(default_factory=dict, max_length=500)
    channels: dict[Code, Label] = Field(default_factory=dict, max_length=100)

    def category(self, code: str, locale: str) -> str:
        return _label(self.categories.get(code), code, locale)

    def channel(self, code: str, locale: str) -> str:
        return _label(self.channels.get(code), code, locale)


def _label(label: Label | None, code: str, locale: str) -> str:
    if label is None:
        return code
    return label.name if locale == "zh_CN" else (label.name_en or label.name)


class OrderPolicy(Strict):
    """What an order must satisfy to be recorded."""

    # |amount paid - (lines net - points paid as money - coupons)| may not exceed this
    # (rounding, card fees), in minor units.
    paid_tolerance_minor: int = Field(default=100, ge=0, le=1_000_000)
    # Orders (and returns) dated more than this many days ago are refused; None: any age.
    max_backdate_days: int | None = Field(default=None, ge=0, le=36_500)


class Households(Strict):
    """Households (家庭账户): a main member invites up to ``max_members`` others to share
    their points pool; an invitation not answered within ``invitation_days`` expires. With
    ``household_qualifies_together`` tier progress counts the orders of every member
    drawing on the pool together (each member still holds their own tier)."""

    max_members: int = Field(default=3, ge=1, le=10)
    invitation_days: int = Field(default=7, ge=1, le=90)
    household_qualifies_together: bool = False


class PassPeriod(Strict):
    """How long one purchase of a pass lasts: whole years and/or months, in local days."""

    years: int = Field(default=0, ge=0, le=10)
    months: int = Field(default=0, ge=0, le=120)

    @model_validator(mode="after")
    def _some(self) -> PassPeriod:
        if self.years == 0 and self.months == 0:
            raise ValueError("a pass period needs years or months")
        return self


class PassBenefits(Strict):
    """What a holder gets while the pass runs, alongside (not instead of) the tier."""

    # Adds to the tier multiplier on the same amount (loyalist.passes docs), never compounds.
    points_multiplier: Multiplier = Decimal("1")
    monthly_coupon: Code | None = None  # a coupon template code, issued once per month held
    free_shipping: bool = False
    exclusive_rewards: list[Code] = Field(default_factory=list)  # reward codes: holders only
    refund_days: int = Field(default=7, ge=0, le=365)


class PassOffer(Strict):
    """A paid membership (付费会员): sold by the API or as an order line whose SKU is its code."""

    code: Code
    name: str = Field(min_length=1, max_length=64)
    name_en: str | None = None
    price_minor: int = Field(ge=0)
    period: PassPeriod
    benefits: PassBenefits = PassBenefits()


class Programme(Strict):
    """One version of a loyalty programme."""

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=128)
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    points: PointsPolicy = PointsPolicy()
    tiers: Tiers
    earning: Earning = Earning()
    rewards: list[Reward] = Field(default_factory=list)
    _conditions: dict[str, conditions.Condition] = PrivateAttr(default_factory=dict)
    orders: OrderPolicy = OrderPolicy()
    # Display names of category and channel codes (issue 10, item 5); omitted when empty.
    labels: Labels = Labels()
    # Households (issue 13, item 1); omitted when default.
    households: Households = Households()
    # Paid memberships (issue 15 item 7); omitted when empty.
    passes: list[PassOffer] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_empty_labels(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``labels`` appears only when given: earlier documents keep their checksum."""
        data: dict[str, Any] = handler(self)
        if data.get("labels") == {"categories": {}, "channels": {}}:
            del data["labels"]
        if data.get("households") == Households().model_dump(mode="json"):
            del data["households"]
        if data.get("passes") == []:
            del data["passes"]
        return data

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if v not in MINOR_UNITS:
            raise ValueError(f"unsupported currency {v!r}; one of {sorted(MINOR_UNITS)}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _references(self) -> Programme:
        codes = {t.code for t in self.tiers.levels}
        for c in self.earning.campaigns:
            unknown = [t for t in c.tiers if t not in codes]
            if unknown:
                raise ValueError(f"campaign {c.code!r}: tiers {unknown} are not tiers")
        seen: set[str] = set()
        for r in self.rewards:
            if r.code in seen:
                raise ValueError(f"reward code {r.code!r} is used twice")
            seen.add(r.code)
            if r.min_tier is not None and r.min_tier not in codes:
                raise ValueError(f"reward {r.code!r}: min_tier {r.min_tier!r} is not a tier")
            if r.valid_from and r.valid_until and r.valid_until <= r.valid_from:
                raise ValueError(f"reward {r.code!r}: valid_until is not after valid_from")
        pass_codes: set[str] = set()
        for p in self.passes:
            if p.code in pass_codes:
                raise ValueError(f"pass code {p.code!r} is used twice")
            pass_codes.add(p.code)
            unknown = [c for c in p.benefits.exclusive_rewards if c not in seen]
            if unknown:
                raise ValueError(f"pass {p.code!r}: exclusive_rewards {unknown} are not rewards")
        return self

    def pass_offer(self, code: str) -> PassOffer | None:
        """The pass sold under ``code`` (an order line's SKU matches it case-insensitively)."""
        return next((p for p in self.passes if p.code == code.lower()), None)

    @model_validator(mode="after")
    def _parse_conditions(self) -> Programme:
        spec = catalogue(t.code for t in self.tiers.levels)
        problems: list[tuple[str, str]] = []
        holders: list[tuple[str, str, Conditional]] = [
            (f"earning.rules.{i}", f"rule:{r.code}", r) for i, r in enumerate(self.earning.rules)
        ] + [
            (f"earning.campaigns.{i}", f"campaign:{c.code}", c)
            for i, c in enumerate(self.earning.campaigns)
        ]
        holders += [
            (f"rewards.{i}.pricing.rules.{j}", f"pricing:{r.code}:{p.code}", p)
            for i, r in enumerate(self.rewards)
            if r.pricing is not None
            for j, p in enumerate(r.pricing.rules)
        ]
        parsed: dict[str, conditions.Condition] = {}
        for where, key, holder in holders:
            if holder.when is None:
                continue
            try:
                parsed[key] = conditions.parse(holder.when, spec)
            except conditions.ConditionError as exc:
                problems.extend(
                    (f"{where}.when" + ("" if p.path == "$" else f".{p.path}"), p.message)
                    for p in exc.problems
                )
        if problems:
            raise PydanticCustomError(
                "condition_invalid",
                "{summary}",
                {"summary": "; ".join(f"{p}: {m}" for p, m in problems), "problems": problems},
            )
        self._conditions = parsed
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def condition(self, key: str) -> conditions.Condition | None:
        """The parsed ``when:`` of ``"rule:<code>"`` or ``"campaign:<code>"``, if it has one."""
        return self._conditions.get(key)

    def condition_fields(self) -> set[str]:
        """Every field the programme's ``when:`` conditions read."""
        out: set[str] = set()
        for cond in self._conditions.values():
            out |= conditions.fields_used(cond)
        return out


# --- Answers -----------------------------------------------------------------------------


class ActiveProgramme(BaseModel):
    version: int
    document: dict[str, Any] = Field(
        description="the programme document (tiers, earning, campaigns, expiry, rewards), "
        "as `loyalist programme apply` takes it"
    )


class ProgrammeVersionOut(BaseModel):
    version: int
    checksum: str
    created_by: str | None
    note: str | None
    created_at: Timestamp


class ProgrammeVersions(BaseModel):
    items: list[ProgrammeVersionOut]
