"""The development inbox's reads, and the API's views of the consent ledger, WeChat
subscribe authorisations and a member's messages."""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalist.access.permissions import MEMBER_READ, MEMBER_WRITE, require
from loyalist.audit import service as audit
from loyalist.kit.actor import Actor
from loyalist.member import consent
from loyalist.member import service as members
from loyalist.messaging import outbox
from loyalist.messaging.inbox import inbox, record
from loyalist.messaging.schemas import (
    AttemptOut,
    AuthorisationIn,
    AuthorisationOut,
    ConsentRecordIn,
    ConsentRecordOut,
    ConsentRecords,
    MessageList,
    MessageOut,
)
from loyalist.models import ConsentRecord

# -- the API's views (issue 14): consent ledger, subscribe authorisations, messages ------


def record_consent_view(
    session: Session, actor: Actor, member_id: int, data: ConsentRecordIn
) -> ConsentRecordOut:
    require(actor, MEMBER_WRITE)
    m = members.get(session, actor, member_id)  # 404 outside the actor's scope
    row = consent.append(
        session,
        m.id,
        data.purpose,
        data.channel,
        data.granted,
        text_version=data.text_version,
        source=data.source,
        actor=actor.name,
    )
    audit.record(
        session,
        actor,
        "member.consent_record",
        "member",
        m.id,
        org_path=m.org_path,
        before=None,
        after={
            "purpose": data.purpose,
            "channel": data.channel,
            "granted": data.granted,
            "text_version": data.text_version,
            "source": data.source,
        },
    )
    return _consent_out(row)


def consent_records_view(session: Session, actor: Actor, member_id: int) -> ConsentRecords:
    require(actor, MEMBER_READ)
    m = members.get(session, actor, member_id)
    return ConsentRecords(items=[_consent_out(r) for r in consent.history(session, m.id)])


def _consent_out(r: ConsentRecord) -> ConsentRecordOut:
    return ConsentRecordOut(
        id=r.id,
        purpose=r.purpose,
        channel=r.channel,
        granted=r.granted,
        text_version=r.text_version,
        source=r.source,
        actor=r.actor,
        recorded_at=r.recorded_at,
    )


def grant_authorisation_view(
    session: Session, actor: Actor, member_id: int, data: AuthorisationIn
) -> AuthorisationOut:
    require(actor, MEMBER_WRITE)
    m = members.get(session, actor, member_id)
    left = outbox.grant_authorisation(session, m.id, data.template_id, data.count)
    audit.record(
        session,
        actor,
        "member.message_authorisation",
        "member",
        m.id,
        org_path=m.org_path,
        before=None,
        after={"template_id": data.template_id, "count": data.count, "remaining": left},
    )
    return AuthorisationOut(template_id=data.template_id, remaining=left)


def messages_view(session: Session, actor: Actor, member_id: int) -> MessageList:
    require(actor, MEMBER_READ)
    m = members.get(session, actor, member_id)
    msgs = outbox.for_member(session, m.id, limit=100)
    tries = outbox.attempts_of(session, [x.id for x in msgs])
    return MessageList(
        items=[
            MessageOut(
                id=x.id,
                channel=x.channel,
                template=x.template,
                purpose=x.purpose,
                status=x.status,
                reason=x.reason,
                created_at=x.created_at,
                due_at=x.due_at,
                sent_at=x.sent_at,
                attempts=[
                    AttemptOut(
                        attempt=a.attempt,
                        at=a.at,
                        outcome=a.outcome,
                        code=a.code,
                        provider_id=a.provider_id,
                    )
                    for a in tries.get(x.id, [])
                ],
            )
            for x in msgs
        ]
    )


__all__ = [
    "consent_records_view",
    "grant_authorisation_view",
    "inbox",
    "messages_view",
    "record",
    "record_consent_view",
]
