from __future__ import annotations

from loyalist.errors import Conflict, ValidationFailed


class ActionInvalid(ValidationFailed):
    code = "action_invalid"
    title = "The action is not valid"


class ActionConflict(Conflict):
    code = "action_conflict"
    title = "The action already ran for this cause with other parameters"
