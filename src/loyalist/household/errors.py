"""Household refusals: each a stable problem+json code."""

from __future__ import annotations

from loyalist.errors import Conflict, NotFound


class HouseholdNotFound(NotFound):
    code = "household_not_found"
    title = "Household not found"


class InvitationNotFound(NotFound):
    code = "household_invitation_not_found"
    title = "Household invitation not found"


class HouseholdClosed(Conflict):
    code = "household_dissolved"
    title = "This household was dissolved"


class HouseholdFull(Conflict):
    code = "household_full"
    title = "The household has no room for another member"


class InvitationClosed(Conflict):
    code = "household_invitation_closed"
    title = "This invitation can no longer be answered"


class NotInvitable(Conflict):
    code = "household_not_invitable"
    title = "This member cannot be invited into this household"


class InOtherHousehold(Conflict):
    code = "household_membership_conflict"
    title = "The member already belongs to a household"


class MainMemberStays(Conflict):
    code = "household_main_member_stays"
    title = "The main member cannot leave the household; dissolve it instead"


class PointsToTransfer(Conflict):
    code = "household_points_to_transfer"
    title = "The member's own points would move into the pool: accept with transfer_points"
