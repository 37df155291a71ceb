"""The consent ledger (issue 13 item 3, issue 14 item 4): every grant or withdrawal per
purpose (marketing, personalisation, analytics) and channel, with the version of the text
the member was shown and where it was given. Append-only; the newest row wins.

``member_consent`` (one row per channel) stays the current marketing choice read by
conditions and the member views; marketing records keep it in step.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalist.kit.clock import utcnow
from loyalist.models import ConsentRecord, MemberConsent

PURPOSES = ("marketing", "personalisation", "analytics")
CHANNELS = ("sms", "email", "push", "wechat", "any")
UNVERSIONED = "unversioned"


def append(
    session: Session,
    member_id: int,
    purpose: str,
    channel: str,
    granted: bool,
    *,
    text_version: str | None,
    source: str | None,
    actor: str | None,
    keep_current: bool = True,
) -> ConsentRecord:
    """Record one choice. ``keep_current`` also updates ``member_consent`` for marketing
    (callers that already wrote it pass False)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown consent purpose {purpose!r}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown consent channel {channel!r}")
    now = utcnow()
    row = ConsentRecord(
        member_id=member_id,
        purpose=purpose,
        channel=channel,
        granted=granted,
        text_version=(text_version or UNVERSIONED)[:32],
        source=(source or "unknown")[:64],
        actor=actor[:128] if actor else None,
        recorded_at=now,
    )
    session.add(row)
    if keep_current and purpose == "marketing" and channel != "any":
        current = session.scalar(
            select(MemberConsent).where(
                MemberConsent.member_id == member_id, MemberConsent.channel == channel
            )
        )
        if current is None:
            session.add(
                MemberConsent(
                    member_id=member_id,
                    channel=channel,
                    granted=granted,
                    source=row.source,
                    updated_at=now,
                )
            )
        else:
            current.granted, current.source, current.updated_at = granted, row.source, now
    session.flush()
    return row


def granted(session: Session, member_id: int, purpose: str, channel: str) -> bool:
    """The member's current choice for ``purpose`` on ``channel`` (a record for the
    channel, else one for ``any``; marketing falls back to ``member_consent`` for members
    from before the ledger). No record: not granted."""
    q = (
        select(ConsentRecord.granted)
        .where(
            ConsentRecord.member_id == member_id,
            ConsentRecord.purpose == purpose,
            ConsentRecord.channel.in_((channel, "any")),
        )
        .order_by(ConsentRecord.id.desc())
        .limit(1)
    )
    found = session.scalar(q)
    if found is not None:
        return bool(found)
    if purpose == "marketing":
        legacy = session.scalar(
            select(MemberConsent.granted).where(
                MemberConsent.member_id == member_id, MemberConsent.channel == channel
            )
        )
        return bool(legacy)
    return False


def granted_members(session: Session, purpose: str) -> set[int]:
    """Every member whose current choice for ``purpose`` on every channel (``any``) is a
    grant: :func:`granted` (channel ``any``) for all members in one query."""
    if purpose == "marketing":  # the legacy fallback is per channel: ask granted()
        raise ValueError("granted_members answers purposes without a legacy fallback")
    latest = (
        select(func.max(ConsentRecord.id))
        .where(ConsentRecord.purpose == purpose, ConsentRecord.channel == "any")
        .group_by(ConsentRecord.member_id)
    )
    q = select(ConsentRecord.member_id).where(
        ConsentRecord.id.in_(latest), ConsentRecord.granted.is_(True)
    )
    return {int(m) for m in session.scalars(q)}


def history(session: Session, member_id: int, *, limit: int = 200) -> list[ConsentRecord]:
    q = (
        select(ConsentRecord)
        .where(ConsentRecord.member_id == member_id)
        .order_by(ConsentRecord.id.desc())
        .limit(limit)
    )
    return list(session.scalars(q))
