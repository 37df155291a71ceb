from __future__ import annotations

from loyalist.errors import NotFound, ValidationFailed


class DocumentInvalid(ValidationFailed):
    code = "document_invalid"
    title = "The document is not valid"


class UnknownKind(NotFound):
    code = "unknown_document_kind"
    title = "No such kind of document"


class NoVersion(NotFound):
    code = "document_version_not_found"
    title = "No such document version"
