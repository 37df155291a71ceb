from __future__ import annotations

from loyalist.errors import Conflict, LoyalistError, NotFound


class StaffUserExists(Conflict):
    code = "staff_user_exists"
    title = "A staff user with this login exists"


class StaffUserNotFound(NotFound):
    code = "staff_user_not_found"
    title = "Staff user not found"


class WrongPassword(LoyalistError):
    status = 422
    code = "wrong_password"
    title = "The current password is wrong"
