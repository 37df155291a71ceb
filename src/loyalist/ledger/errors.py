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
