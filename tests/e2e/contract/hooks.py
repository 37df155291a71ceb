"""Schemathesis hooks for the contract test (loaded through schemathesis.toml)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

_VALID_KEY = re.compile(r"^[!-~]([ -~]{0,253}[!-~])?$")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A valid Idempotency-Key becomes unique per request: generated keys repeat ("0") across
    different bodies, which the API rightly refuses (422 idempotency_key_reused, tested in
    tests/integration/idempotency). Invalid keys are left for the negative checks."""
    for headers in (kwargs.get("headers"), case.headers):
        key = headers.get("Idempotency-Key") if headers else None
        if isinstance(key, str) and _VALID_KEY.match(key):
            headers["Idempotency-Key"] = f"st-{uuid.uuid4().hex}"
