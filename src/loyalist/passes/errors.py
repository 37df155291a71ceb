from __future__ import annotations

from loyalist.errors import Conflict, NotFound, ValidationFailed


class PassNotOffered(ValidationFailed):
    code = "pass_not_offered"
    title = "The programme sells no such pass"


class PassInvalid(ValidationFailed):
    code = "pass_invalid"
    title = "The pass purchase is not valid"


class PassNotFound(NotFound):
    code = "pass_not_found"
    title = "No such pass"


class RefundWindowClosed(Conflict):
    code = "pass_refund_window_closed"
    title = "The pass can no longer be refunded"
