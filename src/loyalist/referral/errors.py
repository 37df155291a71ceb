"""Referral and viral-campaign refusals: each a stable problem+json code."""

from __future__ import annotations

from loyalist.errors import Conflict, NotFound, ValidationFailed


class ReferralNotFound(NotFound):
    code = "referral_not_found"
    title = "Referral not found"


class UnknownReferralCode(ValidationFailed):
    code = "unknown_referral_code"
    title = "No member has this referral code"


class SelfReferral(Conflict):
    code = "self_referral"
    title = "A member cannot refer themselves"


class AlreadyReferred(Conflict):
    code = "already_referred"
    title = "This member was already referred"


class ReferralClosed(Conflict):
    code = "referral_closed"
    title = "This member can no longer enter a referral code"


class ReferralsDisabled(Conflict):
    code = "referrals_disabled"
    title = "Referrals are switched off"


class NotOnHold(Conflict):
    code = "referral_not_on_hold"
    title = "This referral is not waiting for a review"
