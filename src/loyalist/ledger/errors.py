from loyalist.errors import Conflict, NotFound, ValidationFailed


class InsufficientPoints(Conflict):
    code = "insufficient_points"
    title = "Not enough available points"


class EntryNotFound(NotFound):
    code = "ledger_entry_not_found"
    title = "Ledger entry not found"


class InvalidAdjustment(ValidationFailed):
    code = "invalid_adjustment"
    title = "The adjustment is not valid"


class AccountNotFound(NotFound):
    code = "points_account_not_found"
    title = "Points account not found"


class MembershipNotFound(NotFound):
    code = "points_account_membership_not_found"
    title = "The member does not draw on that points account"


class AccountNotShareable(Conflict):
    code = "points_account_not_shareable"
    title = "The member cannot join or leave that points account"


class AccountNotEmpty(Conflict):
    code = "points_account_not_empty"
    title = "The member's own points account still holds points"


class SpendNotPermitted(Conflict):
    code = "spend_not_permitted"
    title = "The member may not spend this shared account's points"
