"""Coupon errors: each refusal has its stable code."""

from __future__ import annotations

from typing import ClassVar

from loyalist.coupon import domain
from loyalist.errors import Conflict, LoyalistError, NotFound, ValidationFailed


class TemplateNotFound(NotFound):
    code = "coupon_template_not_found"
    title = "No such coupon template"


class TemplateExists(Conflict):
    code = "coupon_template_exists"
    title = "A different template already has this code"


class TemplateInvalid(ValidationFailed):
    code = "coupon_template_invalid"
    title = "The coupon template is not valid"


class BatchNotFound(NotFound):
    code = "coupon_batch_not_found"
    title = "No such coupon batch"


class BatchExists(Conflict):
    code = "coupon_batch_exists"
    title = "A different batch already has this id"


class BatchInfeasible(ValidationFailed):
    code = "coupon_batch_infeasible"
    title = "The batch cannot be made with this pattern"


class CodesExist(Conflict):
    code = "coupon_codes_exist"
    title = "Some imported codes exist already"


class CouponNotFound(NotFound):
    code = "coupon_not_found"
    title = "No such coupon"


class CouponInvalid(ValidationFailed):
    """A code presented with an order does not apply (each code's reason in ``errors``)."""

    code = "coupon_invalid"
    title = "A coupon does not apply to this order"


class CouponConflict(Conflict):
    """A code was used up meanwhile (the base of the four conflicts below)."""

    code = "coupon_unavailable"
    title = "The coupon can no longer be used"


class CouponUsed(CouponConflict):
    code = "coupon_used"
    title = "The coupon has been used"


class CouponMemberLimit(CouponConflict):
    code = "coupon_member_limit"
    title = "The member has used this coupon as often as allowed"


class CouponTotalLimit(CouponConflict):
    code = "coupon_total_limit"
    title = "This coupon's total number of uses is reached"


class CouponBudgetExhausted(CouponConflict):
    code = "coupon_budget_exhausted"
    title = "This coupon's budget is spent"


CONFLICT_BY_REASON: dict[str, type[CouponConflict]] = {
    domain.USED_UP: CouponUsed,
    domain.MEMBER_LIMIT: CouponMemberLimit,
    domain.TOTAL_LIMIT: CouponTotalLimit,
    domain.BUDGET: CouponBudgetExhausted,
}


class GuessThrottled(LoyalistError):
    status: ClassVar[int] = 429
    code: ClassVar[str] = "coupon_guess_throttled"
    title: ClassVar[str] = "Too many unknown coupon codes; try again later"
