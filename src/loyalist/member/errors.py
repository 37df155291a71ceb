from loyalist.errors import Conflict, NotFound


class MemberNotFound(NotFound):
    code = "member_not_found"
    title = "Member not found"


class MemberConflict(Conflict):
    code = "member_conflict"
    title = "Another member already holds this identity"
