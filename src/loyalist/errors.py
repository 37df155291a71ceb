"""The error every layer raises: an HTTP status, a stable code and field details.

One handler in ``app.py`` turns any :class:`LoyalistError` into RFC 9457 problem+json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class FieldError:
    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


@dataclass
class LoyalistError(Exception):
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://loyalist.dev/problems/{self.code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail or self.title,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class ValidationFailed(LoyalistError):
    status = 422
    code = "validation_failed"
    title = "The request is not valid"


class OutOfRange(ValidationFailed):
    code = "out_of_range"
    title = "A value is out of range"


class NotFound(LoyalistError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(LoyalistError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Unauthorized(LoyalistError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(LoyalistError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class PayloadTooLarge(LoyalistError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class UnsupportedMediaType(LoyalistError):
    status = 415
    code = "unsupported_media_type"
    title = "The body must be JSON"


class IdempotencyKeyReused(LoyalistError):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency key was used with a different request"


class IdempotencyInProgress(LoyalistError):
    status = 409
    code = "idempotency_in_progress"
    title = "A request with this idempotency key is still being processed"


class ServiceUnavailable(LoyalistError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
