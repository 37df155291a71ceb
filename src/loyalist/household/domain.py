"""Pure household rules: invitation states, room in a household, expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

ACTIVE = "active"
DISSOLVED = "dissolved"

PENDING = "pending"
ACCEPTED = "accepted"
DECLINED = "declined"
EXPIRED = "expired"
CANCELLED = "cancelled"
INVITATION_STATES = (PENDING, ACCEPTED, DECLINED, EXPIRED, CANCELLED)


def invitation_state(status: str, expires_at: datetime, now: datetime) -> str:
    """What an invitation is now: a pending one past its expiry is expired (the sweep job
    writes that down later; nobody can accept it meanwhile)."""
    if status == PENDING and expires_at <= now:
        return EXPIRED
    return status


def expires_at(now: datetime, days: int) -> datetime:
    return now + timedelta(days=days)


def has_room(max_members: int, members: int, pending: int) -> bool:
    """Another invitation fits when the members drawing on the pool (the main member not
    counted) and the open invitations stay within ``max_members``."""
    return members + pending < max_members
