"""Who is acting and over which part of the organisation tree.

A scope is a materialised path ("/1/4/"): the actor sees an object when the object's path
starts with it. Services take an actor and filter by it, so API keys and console users
share one rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    name: str  # e.g. "apikey:lk_ab12cd34" or "user:alice" or "system:jobs"
    scope_path: str = "/"
    can_write: bool = True
    principal: str = "system"  # stable id for idempotency records
    # Actions a console role may take; None means every action (API keys, system).
    permissions: frozenset[str] | None = None
    # A console user's role (daily adjustment budgets are per role); None for keys and system.
    role: str | None = None
    # Points an API key may adjust at once without a second person; None: the threshold.
    approval_free_limit: int | None = None

    def can(self, action: str) -> bool:
        return self.permissions is None or action in self.permissions

    def sees(self, path: str | None) -> bool:
        return path is not None and path.startswith(self.scope_path)


SYSTEM = Actor(name="system", scope_path="/", can_write=True, principal="system")
