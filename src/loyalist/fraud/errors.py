"""Fraud-control refusals: each a stable problem+json code."""

from __future__ import annotations

from loyalist.errors import Conflict, NotFound


class FraudBlocked(Conflict):
    code = "fraud_blocked"
    title = "Refused by a fraud rule"


class MemberFrozen(Conflict):
    code = "member_frozen"
    title = "The member is frozen: redeeming and paying with points are suspended"


class ReviewNotFound(NotFound):
    code = "fraud_review_not_found"
    title = "Fraud review item not found"


class AlreadyDecided(Conflict):
    code = "fraud_review_decided"
    title = "This review item was already decided"
