from loyalist.errors import Conflict, NotFound, ValidationFailed


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "Order not found"


class OrderConflict(Conflict):
    code = "order_conflict"
    title = "An order with this external id was recorded with different content"


class ReturnConflict(Conflict):
    code = "return_conflict"
    title = "A return with this id was recorded with different content"


class InvalidOrder(ValidationFailed):
    code = "invalid_order"
    title = "The order is not valid"


class InvalidReturn(ValidationFailed):
    code = "invalid_return"
    title = "The return is not valid"
