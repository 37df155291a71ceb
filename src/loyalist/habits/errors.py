from __future__ import annotations

from loyalist.errors import Conflict, NotFound, ValidationFailed


class CheckinsDisabled(Conflict):
    code = "checkins_disabled"
    title = "Check-ins are not enabled in this programme"


class AlreadyCheckedIn(Conflict):
    code = "already_checked_in"
    title = "The member has already checked in today"


class ActivityNotOffered(Conflict):
    code = "activity_not_offered"
    title = "This programme gives no points for this activity"


class ActivityNotEligible(Conflict):
    code = "activity_not_eligible"
    title = "The member is not eligible for this activity now"


class ActivityInvalid(ValidationFailed):
    code = "activity_invalid"
    title = "The activity is not valid"


class LeaderboardNotFound(NotFound):
    code = "leaderboard_not_found"
    title = "No such leaderboard"


class PeriodInvalid(ValidationFailed):
    code = "period_invalid"
    title = "The period is not valid"
