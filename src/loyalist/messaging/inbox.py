"""The development inbox: messages kept in a table instead of being delivered."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.kit.clock import utcnow
from loyalist.messaging.templates import Rendered
from loyalist.models import Message


def record(
    session: Session,
    *,
    channel: str,
    to: str,
    template: str,
    params: Mapping[str, str | int],
    locale: str,
    rendered: Rendered,
) -> Message:
    msg = Message(
        channel=channel,
        recipient=to[:254],
        template=template,
        locale=locale,
        params=dict(params),
        subject=rendered.subject[:200],
        body=rendered.body[:2000],
        created_at=utcnow(),
    )
    session.add(msg)
    session.flush()
    return msg


def inbox(session: Session, *, limit: int = 50, recipient: str | None = None) -> list[Message]:
    """The newest messages first."""
    q = select(Message).order_by(Message.id.desc()).limit(limit)
    if recipient is not None:
        q = q.where(Message.recipient == recipient)
    return list(session.scalars(q))
