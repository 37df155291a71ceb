"""The one path every message takes: ``send`` records it, a job delivers it.

``send(session, member_id, template, data, purpose=…)`` runs inside the caller's unit
of work. It picks the channel (the template's channels in order: the first the member
can be reached on and, unless transactional, has consented to for the purpose), renders
the text for the member's locale, applies frequency caps (per member, channel and local
day / ISO week, counted in ``message_quota`` with conditional updates) and quiet hours
(held until the window ends, in the programme's time zone), writes the ``message`` row
and enqueues a ``messaging.deliver`` job for after commit. It never calls a provider.
A suppressed message is a row too (status ``suppressed`` with its reason) and a log
line; ``send`` never raises for a suppression.

``deliver(session, message_id)`` (the job, or a caller that wants a transactional
message out at once, e.g. a sign-in code) hands the message to the adapter of its
channel, records the attempt and the provider's receipt, and on a failure that may
pass schedules the next attempt (30 s, 1 min, 2 min … ``domain.retry_delay``) up to
``domain.MAX_ATTEMPTS``. A WeChat subscribe message the user refused (43101) falls
back to SMS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import utcnow
from loyalist.member import consent as consents
from loyalist.member import service as members
from loyalist.messaging import domain
from loyalist.messaging import settings as registry
from loyalist.messaging.channels import Adapter, DeliveryFailed, Outgoing, mask_address
from loyalist.messaging.config import MessagingConfig, TemplateDef, WechatSpec, current
from loyalist.models import Message, MessageAttempt, MessageAuthorisation, MessageQuota
from loyalist.programme import service as programmes
from loyalist.programme.errors import NoProgramme

log = logging.getLogger("loyalist.messages")

DELIVER = "messaging.deliver"
DEFAULT_ZONE = "Asia/Shanghai"
Status = Literal["queued", "held", "suppressed"]


class UnknownTemplate(LookupError):
    pass


class MissingData(KeyError):
    """The template needs a variable the data does not give (``.args[0]`` names it)."""


@dataclass(frozen=True, slots=True)
class SendResult:
    status: Status
    message_id: int
    channel: str | None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message_id": self.message_id,
            "channel": self.channel,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str
    provider: dict[str, Any]


def zone_of(session: Session) -> ZoneInfo:
    try:
        return programmes.active(session)[1].tz
    except NoProgramme:
        return ZoneInfo(DEFAULT_ZONE)


def template_of(cfg: MessagingConfig, name: str) -> TemplateDef:
    try:
        return cfg.templates[name]
    except KeyError:
        raise UnknownTemplate(name) from None


def render(t: TemplateDef, channel: str, data: Mapping[str, Any], locale: str) -> Rendered:
    """The texts for ``locale`` (zh_CN when the template lacks it) and the provider's
    parameters for ``channel``, every ``{variable}`` filled (MissingData otherwise)."""
    text = t.texts.get(locale) or t.texts["zh_CN"]  # type: ignore[call-overload]
    try:
        subject = domain.fill(text.subject, data)
        body = domain.fill(text.body, data)
        provider: dict[str, Any] = {}
        if channel == "sms" and t.sms is not None:
            provider = {
                "template_code": t.sms.template_code,
                "params": {k: domain.fill(v, data) for k, v in t.sms.params.items()},
            }
        spec: WechatSpec | None = None
        if channel == "wechat_template":
            spec = t.wechat_template
        elif channel == "wechat_subscribe":
            spec = t.wechat_subscribe
        if spec is not None:
            provider = {
                "template_id": spec.template_id,
                "page": spec.page,
                "fields": {k: domain.fill(v, data) for k, v in spec.fields.items()},
            }
    except domain.MissingVariable as exc:
        raise MissingData(exc.args[0]) from None
    return Rendered(subject, body, provider)


def _addresses(session: Session, member: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    if member.phone:
        found["phone"] = member.phone
    if member.email:
        found["email"] = member.email
    for kind, value in members.identities(session, member.id):
        found.setdefault(kind, value)
    return found


def _authorisations(session: Session, member_id: int, template_id: str) -> int:
    q = select(MessageAuthorisation.remaining).where(
        MessageAuthorisation.member_id == member_id,
        MessageAuthorisation.template_id == template_id,
    )
    return int(session.scalar(q) or 0)


def _consume_authorisation(session: Session, member_id: int, template_id: str) -> bool:
    res = session.execute(
        update(MessageAuthorisation)
        .where(
            MessageAuthorisation.member_id == member_id,
            MessageAuthorisation.template_id == template_id,
            MessageAuthorisation.remaining > 0,
        )
        .values(remaining=MessageAuthorisation.remaining - 1, updated_at=utcnow())
    )
    return bool(getattr(res, "rowcount", 0))


def grant_authorisation(session: Session, member_id: int, template_id: str, n: int = 1) -> int:
    """The member allowed ``n`` more subscribe messages of ``template_id``
    (``wx.requestSubscribeMessage`` answered "accept"); returns how many remain."""
    if n < 1:
        raise ValueError("n must be at least 1")
    now = utcnow()
    values = {"member_id": member_id, "template_id": template_id, "remaining": 0, "updated_at": now}
    ins: Any = (
        postgresql.insert(MessageAuthorisation)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(MessageAuthorisation)
    )
    session.execute(ins.values(**values).on_conflict_do_nothing())
    session.execute(
        update(MessageAuthorisation)
        .where(
            MessageAuthorisation.member_id == member_id,
            MessageAuthorisation.template_id == template_id,
        )
        .values(remaining=MessageAuthorisation.remaining + n, updated_at=now)
    )
    return _authorisations(session, member_id, template_id)


def _take_quota(session: Session, member_id: int, channel: str, period: str, cap: int) -> bool:
    """One more message in ``period`` if fewer than ``cap`` were counted (atomic)."""
    values = {"member_id": member_id, "channel": channel, "period": period, "used": 0}
    ins: Any = (
        postgresql.insert(MessageQuota)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(MessageQuota)
    )
    session.execute(ins.values(**values).on_conflict_do_nothing())
    res = session.execute(
        update(MessageQuota)
        .where(
            MessageQuota.member_id == member_id,
            MessageQuota.channel == channel,
            MessageQuota.period == period,
            MessageQuota.used < cap,
        )
        .values(used=MessageQuota.used + 1)
    )
    return bool(getattr(res, "rowcount", 0))


def _caps(
    session: Session,
    cfg: MessagingConfig,
    member_id: int,
    channel: str,
    at: datetime,
    zone: ZoneInfo,
) -> str | None:
    """Count the message against the channel's caps; the reason when one is reached."""
    caps = cfg.caps.get(channel)  # type: ignore[call-overload]
    if caps is None or (caps.day is None and caps.week is None):
        return None
    with session.begin_nested() as nested:
        if caps.week is not None and not _take_quota(
            session, member_id, channel, domain.week_period(at, zone), caps.week
        ):
            nested.rollback()
            return domain.CAP_WEEK
        if caps.day is not None and not _take_quota(
            session, member_id, channel, domain.day_period(at, zone), caps.day
        ):
            nested.rollback()
            return domain.CAP_DAY
    return None


# Variables a feature fills in for every template that uses them, unless the caller gave
# them: name -> fn(session, member, locale) -> text. Registered by the feature's module
# listed in bootstrap (e.g. ``{recommendations}``, issue 14 item 6), so that messaging
# does not import the features that send messages.
VariableFn = Callable[[Session, Any, str], str]
VARIABLES: dict[str, VariableFn] = {}


def register_variable(name: str, fn: VariableFn) -> None:
    VARIABLES[name] = fn


def _uses(t: TemplateDef, name: str) -> bool:
    texts = [x for text in t.texts.values() for x in (text.subject, text.body)]
    if t.sms is not None:
        texts += list(t.sms.params.values())
    for spec in (t.wechat_template, t.wechat_subscribe):
        if spec is not None:
            texts += list(spec.fields.values())
    return any(name in domain.variables(x) for x in texts)


def _with_variables(
    session: Session, t: TemplateDef, member: Any, data: Mapping[str, Any], locale: str
) -> Mapping[str, Any]:
    extra = {
        name: fn(session, member, locale)
        for name, fn in VARIABLES.items()
        if name not in data and _uses(t, name)
    }
    return {**data, **extra} if extra else data


def send(
    session: Session,
    member_id: int,
    template: str,
    data: Mapping[str, Any],
    *,
    purpose: str | None = None,
    channel: str | None = None,
    locale: str | None = None,
    dedupe_key: str | None = None,
    actor: Actor = SYSTEM,
    expires_at: datetime | None = None,
) -> SendResult:
    """Queue, hold or suppress one message to a member (see the module's docstring).

    ``purpose`` defaults to the template's; ``channel`` narrows the template's channels
    to one. Raises UnknownTemplate / MissingData for a bad template or data (the
    caller's mistake), never for a suppression.
    """
    if dedupe_key is not None:
        found = session.scalar(select(Message).where(Message.dedupe_key == dedupe_key))
        if found is not None:
            return _result(found)
    member = members.get(session, actor, member_id)
    cfg = current(session)
    t = template_of(cfg, template)
    data = _with_variables(session, t, member, data, locale or "zh_CN")
    why = purpose or t.purpose
    if why not in domain.PURPOSES:
        raise ValueError(f"unknown purpose {why!r}")
    if channel is not None and channel not in domain.CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    loc = locale or "zh_CN"
    now = utcnow()
    zone = zone_of(session)
    addresses = _addresses(session, member)
    candidates = [channel] if channel is not None else list(t.channels)
    reason: str | None = None
    chosen: str | None = None
    note: str | None = None
    configured = registry.configured()
    for ch in candidates:
        if ch not in configured:
            reason = reason or domain.CHANNEL_OFF
            continue
        if domain.ADDRESS[ch] not in addresses:
            reason = reason or domain.NO_ADDRESS
            continue
        if why != "transactional" and not consents.granted(
            session, member.id, why, domain.CONSENT_CHANNEL[ch]
        ):
            reason = domain.NO_CONSENT
            continue
        if (
            ch == "wechat_subscribe"
            and t.wechat_subscribe is not None
            and _authorisations(session, member.id, t.wechat_subscribe.template_id) < 1
        ):
            # No authorisation left: fall back to SMS (issue 14 item 3).
            note = domain.NO_AUTHORISATION
            if (
                "sms" in addresses
                and "sms" in configured
                and (why == "transactional" or consents.granted(session, member.id, why, "sms"))
            ):
                chosen = "sms"
                break
            reason = domain.NO_AUTHORISATION
            continue
        chosen = ch
        break
    rendered = render(t, chosen or candidates[0], data, loc)  # MissingData before any write
    status: str = "queued"
    due: datetime | None = None
    if chosen is None:
        status = "suppressed"
    elif why != "transactional":
        quiet = cfg.quiet_hours.hours() if cfg.quiet_hours is not None else None
        due = domain.quiet_until(now, zone, quiet)
        cap_reason = _caps(session, cfg, member.id, chosen, due or now, zone)
        if cap_reason is not None:
            status, reason, due = "suppressed", cap_reason, None
        elif due is not None:
            status, reason = "held", "quiet_hours"
    if status == "queued":
        reason = note
    if (
        status != "suppressed"
        and chosen == "wechat_subscribe"
        and t.wechat_subscribe is not None
        and not _consume_authorisation(session, member.id, t.wechat_subscribe.template_id)
    ):
        # A concurrent send took the last authorisation (conditional update).
        status, reason, due = "suppressed", domain.NO_AUTHORISATION, None
    ch_name = chosen or candidates[0]
    to = addresses.get(domain.ADDRESS[ch_name], "") if chosen else ""
    msg = Message(
        channel=ch_name,
        recipient=to[:254],
        template=template,
        locale=loc,
        params={
            **{k: v for k, v in data.items() if isinstance(v, str | int)},
            **({"_provider": rendered.provider} if rendered.provider and chosen else {}),
        },
        subject=rendered.subject[:200],
        body=rendered.body[:2000],
        created_at=now,
        member_id=member.id,
        org_path=member.org_path,
        purpose=why,
        status=status,
        reason=reason,
        attempts=0,
        due_at=due,
        expires_at=expires_at,
        dedupe_key=dedupe_key,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(msg)
            session.flush()
    except IntegrityError:
        # The same dedupe key from a concurrent transaction: theirs stands.
        found = session.scalar(select(Message).where(Message.dedupe_key == dedupe_key))
        if found is None:
            raise
        return _result(found)
    if status == "suppressed":
        log.info("message %s (%s) to member %s suppressed: %s", template, why, member.id, reason)
    else:
        queue.enqueue(
            session,
            DELIVER,
            {"message_id": msg.id},
            run_at=due,
            dedupe_key=f"message:{msg.id}:1",
        )
    return _result(msg)


def send_to_address(
    session: Session,
    *,
    channel: str,
    to: str,
    template: str,
    data: Mapping[str, Any],
    locale: str = "zh_CN",
    expires_at: datetime | None = None,
    member_id: int | None = None,
) -> SendResult:
    """A transactional message to an address that may not be a member's yet (the
    sign-in code that lets someone join). No consent, caps or quiet hours apply."""
    cfg = current(session)
    t = template_of(cfg, template)
    rendered = render(t, channel, data, locale)
    now = utcnow()
    msg = Message(
        channel=channel,
        recipient=to[:254],
        template=template,
        locale=locale,
        params={
            **{k: v for k, v in data.items() if isinstance(v, str | int)},
            **({"_provider": rendered.provider} if rendered.provider else {}),
        },
        subject=rendered.subject[:200],
        body=rendered.body[:2000],
        created_at=now,
        member_id=member_id,
        purpose="transactional",
        status="queued",
        attempts=0,
        expires_at=expires_at,
        updated_at=now,
    )
    session.add(msg)
    session.flush()
    queue.enqueue(session, DELIVER, {"message_id": msg.id}, dedupe_key=f"message:{msg.id}:1")
    return _result(msg)


def _result(msg: Message) -> SendResult:
    status: Status = (
        "suppressed" if msg.status == "suppressed" else "held" if msg.status == "held" else "queued"
    )
    return SendResult(status, msg.id, msg.channel, msg.reason)


# -- delivery ----------------------------------------------------------------------------


def _outgoing(msg: Message) -> Outgoing:
    provider = msg.params.get("_provider") or {}
    params = {k: v for k, v in msg.params.items() if not k.startswith("_")}
    return Outgoing(
        message_id=msg.id,
        channel=msg.channel,
        to=msg.recipient,
        template=msg.template,
        locale=msg.locale,
        subject=msg.subject,
        body=msg.body,
        params=params,
        provider=provider,
    )


def deliver(
    session: Session,
    message_id: int,
    *,
    adapter: Adapter | None = None,
) -> str:
    """Hand one message to its provider (once): returns the message's status after."""
    q = select(Message).where(Message.id == message_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    msg = session.scalar(q)
    if msg is None or msg.status not in ("queued", "held"):
        return msg.status if msg is not None else "missing"
    now = utcnow()
    if msg.expires_at is not None and now >= msg.expires_at:
        msg.status, msg.reason, msg.updated_at = "expired", "expired", now
        return msg.status
    if msg.due_at is not None and now < msg.due_at:
        # An early job (the clock was moved back): come back when the hold ends.
        queue.enqueue(
            session,
            DELIVER,
            {"message_id": msg.id},
            run_at=msg.due_at,
            dedupe_key=f"message:{msg.id}:due:{msg.due_at.isoformat()}",
        )
        return msg.status
    chosen = adapter or registry.configured().get(msg.channel)
    msg.attempts += 1
    msg.updated_at = now
    if chosen is None:
        msg.status, msg.reason = "failed", domain.CHANNEL_OFF
        _attempt(session, msg, "failed", domain.CHANNEL_OFF, "no adapter for the channel", None)
        return msg.status
    try:
        receipt = chosen.deliver(_outgoing(msg))
    except DeliveryFailed as exc:
        code = getattr(exc, "code", "failed")
        outcome = "refused" if exc.refused else "failed"
        _attempt(session, msg, outcome, code, str(exc), None)
        log.warning(
            "message %s #%s to %s: attempt %s failed (%s)",
            msg.template,
            msg.id,
            mask_address(msg.recipient),
            msg.attempts,
            code,
        )
        if exc.refused and msg.channel == "wechat_subscribe" and msg.member_id is not None:
            msg.status, msg.reason = "failed", "refused"
            _fallback_to_sms(session, msg)
        elif exc.retry and msg.attempts < domain.MAX_ATTEMPTS:
            msg.status, msg.reason = "queued", f"retry:{code}"[:64]
            queue.enqueue(
                session,
                DELIVER,
                {"message_id": msg.id},
                run_at=now + domain.retry_delay(msg.attempts),
                dedupe_key=f"message:{msg.id}:{msg.attempts + 1}",
            )
        else:
            msg.status, msg.reason = "failed", str(code)[:64]
        return msg.status
    # Keep why it was held or rerouted; a retry's reason is history (the attempts).
    msg.status = "sent"
    msg.reason = None if (msg.reason or "").startswith("retry:") else msg.reason
    msg.sent_at, msg.provider_id = now, (receipt.provider_id or None)
    _attempt(session, msg, "sent", receipt.code, receipt.detail, receipt.provider_id)
    log.info("message %s #%s to %s sent", msg.template, msg.id, mask_address(msg.recipient))
    return msg.status


def _attempt(
    session: Session,
    msg: Message,
    outcome: str,
    code: str | None,
    detail: str | None,
    provider_id: str | None,
) -> None:
    session.add(
        MessageAttempt(
            message_id=msg.id,
            attempt=msg.attempts,
            at=utcnow(),
            outcome=outcome,
            code=(code or None) and str(code)[:64],
            detail=detail[:500] if detail else None,
            provider_id=provider_id[:128] if provider_id else None,
        )
    )


def _fallback_to_sms(session: Session, msg: Message) -> None:
    assert msg.member_id is not None
    data = {k: v for k, v in msg.params.items() if not k.startswith("_")}
    try:
        result = send(
            session,
            msg.member_id,
            msg.template,
            data,
            purpose=msg.purpose,
            channel="sms",
            locale=msg.locale,
            dedupe_key=f"fallback:{msg.id}",
        )
    except (UnknownTemplate, MissingData):
        return
    fallback = session.get(Message, result.message_id)
    if fallback is not None:
        fallback.fallback_of = msg.id


def record_receipt(session: Session, provider_id: str, status: str, code: str | None) -> bool:
    """A provider's delivery report (SMS ``SmsReport``, WeChat event push): the message
    sent with ``provider_id`` is ``delivered`` or ``failed``; False when unknown."""
    msg = session.scalar(select(Message).where(Message.provider_id == provider_id))
    if msg is None or msg.status not in ("sent", "delivered", "failed"):
        return False
    msg.status = "delivered" if status == "delivered" else "failed"
    msg.reason = None if msg.status == "delivered" else (code or "undelivered")[:64]
    msg.updated_at = utcnow()
    _attempt(session, msg, msg.status, code, "receipt", provider_id)
    return True


# -- reading -----------------------------------------------------------------------------


def for_member(session: Session, member_id: int, *, limit: int = 50) -> list[Message]:
    q = (
        select(Message)
        .where(Message.member_id == member_id)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return list(session.scalars(q))


def attempts_of(session: Session, message_ids: list[int]) -> dict[int, list[MessageAttempt]]:
    if not message_ids:
        return {}
    q = (
        select(MessageAttempt)
        .where(MessageAttempt.message_id.in_(message_ids))
        .order_by(MessageAttempt.id)
    )
    out: dict[int, list[MessageAttempt]] = {}
    for a in session.scalars(q):
        out.setdefault(a.message_id, []).append(a)
    return out


def counts(session: Session) -> dict[str, int]:
    q = select(Message.status, func.count()).group_by(Message.status)
    return {s: int(n) for s, n in session.execute(q)}


@dataclass(frozen=True, slots=True)
class Preview:
    template: str
    locale: str
    purpose: str
    channels: list[str]
    data: dict[str, Any]
    subject: str | None
    body: str | None
    provider: dict[str, dict[str, Any]]  # channel -> rendered provider parameters
    problems: list[str]  # missing variables, WeChat field limits


def templates(session: Session) -> MessagingConfig:
    """The configuration in force (published document over the built-in templates)."""
    return current(session)


def preview(
    session: Session, name: str, locale: str, data: Mapping[str, Any] | None = None
) -> Preview:
    """``name`` rendered for ``locale`` with ``data`` (default: the template's sample),
    for every channel it lists; problems are listed rather than raised."""
    cfg = current(session)
    t = template_of(cfg, name)
    values = dict(t.sample if data is None else data)
    problems: list[str] = []
    subject = body = None
    provider: dict[str, dict[str, Any]] = {}
    for ch in t.channels:
        try:
            r = render(t, ch, values, locale)
        except MissingData as exc:
            problems.append(f"missing variable: {exc.args[0]}")
            break
        subject, body = r.subject, r.body
        if r.provider:
            provider[ch] = r.provider
            fields = r.provider.get("fields")
            if fields:
                problems += [f"{ch}.{k}: {why}" for k, why in domain.wechat_field_problems(fields)]
    return Preview(
        name, locale, t.purpose, list(t.channels), values, subject, body, provider, problems
    )


def recent(session: Session, actor: Actor, *, limit: int = 50) -> list[Message]:
    """The newest messages the actor's scope covers (programme-wide ones for HQ only)."""
    q = select(Message).order_by(Message.id.desc()).limit(limit)
    if actor.scope_path != "/":
        q = q.where(Message.org_path.startswith(actor.scope_path))
    return list(session.scalars(q))
