"""The client address of the request being served, for code that wants it without a web
dependency (the fraud controls count requests per IP). Set by the API's write path."""

from __future__ import annotations

from contextvars import ContextVar

client_ip: ContextVar[str | None] = ContextVar("loyalist_client_ip", default=None)
