from loyalist.errors import Conflict, NotFound, ValidationFailed


class MergeNotFound(NotFound):
    code = "merge_not_found"
    title = "Merge not found"


class CandidateNotFound(NotFound):
    code = "duplicate_candidate_not_found"
    title = "Duplicate candidate not found"


class MergeRefused(Conflict):
    code = "merge_refused"
    title = "These members cannot be merged"


class UndoRefused(Conflict):
    code = "merge_undo_refused"
    title = "This merge cannot be undone"


class SameMember(ValidationFailed):
    code = "same_member"
    title = "A member cannot be merged with itself"
