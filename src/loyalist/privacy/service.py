"""A member's data: export (a zip of JSON and CSV with a manifest) and erasure.

Erasure (right to be forgotten, or retention) removes what identifies the member and keeps
every figure: the member row stays (id, member number, home store, tier, dates) with its
personal fields emptied; identities, login codes and sessions are deleted; the member's
audit rows, event payloads, tasks and messages have personal values replaced by
``[erased]``; deliveries of their events drop the receivers' answers. Ledger entries, lots,
orders and redemptions are untouched, so balances, lot expiries, liability and analytics
stay identical (and the ledger's hash chains intact). A ``member.erased`` event tells
consumers and webhooks to do the same.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from loyalist.access.permissions import PRIVACY_MANAGE, require
from loyalist.audit import service as audit
from loyalist.events import service as events
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.member import service as members
from loyalist.models import (
    AuditLog,
    LedgerEntry,
    Member,
    MemberConsent,
    MemberIdentity,
    MemberLoginCode,
    MemberSession,
    MemberTag,
    MemberTask,
    Message,
    Order,
    OutboxEvent,
    PointsLot,
    Redemption,
    TierChange,
    WebhookAttempt,
    WebhookDelivery,
)

ERASED = "[erased]"
FORMAT = "loyalist.member-export/1"
#: Member fields that identify a person (emptied by erasure).
PERSONAL = ("phone", "email", "name", "birthday", "gender", "city", "external_id")
#: Keys whose values are personal wherever they appear in a payload or audit row.
PERSONAL_KEYS = frozenset(
    {*PERSONAL, "address", "wechat_openid", "openid", "pos_card", "recipient", "to", "value"}
)

# The tables of a member's export: (file name, model, the column naming the member).
_TABLES: list[tuple[str, Any, Any]] = [
    ("identities", MemberIdentity, MemberIdentity.member_id),
    ("tags", MemberTag, MemberTag.member_id),
    ("consents", MemberConsent, MemberConsent.member_id),
    ("ledger_entries", LedgerEntry, LedgerEntry.member_id),
    ("points_lots", PointsLot, PointsLot.member_id),
    ("orders", Order, Order.member_id),
    ("redemptions", Redemption, Redemption.member_id),
    ("tier_changes", TierChange, TierChange.member_id),
]
_SKIP_COLUMNS = frozenset({"phone_bidx", "email_bidx", "name_bidx", "value_bidx"})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _row(obj: Any) -> dict[str, Any]:
    return {
        c.key: _plain(getattr(obj, c.key))
        for c in obj.__table__.columns
        if c.key not in _SKIP_COLUMNS
    }


def _csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                    for k, v in r.items()
                }
            )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel opens UTF-8 CSV as such


@dataclass(frozen=True)
class Export:
    filename: str
    data: bytes
    manifest: dict[str, Any]


def export(session: Session, actor: Actor, member_id: int) -> Export:
    """Everything Loyalist holds about a member, as a zip: for each table a JSON and a CSV
    file, and ``manifest.json`` (format, member, time, each file's rows and SHA-256)."""
    require(actor, PRIVACY_MANAGE)
    m = members.get(session, actor, member_id)
    tables: dict[str, list[dict[str, Any]]] = {"member": [_row(m)]}
    for name, model, column in _TABLES:
        q = select(model).where(column == m.id).order_by(model.id)
        tables[name] = [_row(r) for r in session.scalars(q)]
    files: dict[str, bytes] = {}
    for name, rows in tables.items():
        files[f"{name}.json"] = json.dumps(rows, ensure_ascii=False, indent=1).encode("utf-8")
        files[f"{name}.csv"] = _csv(rows)
    now = utcnow()
    manifest = {
        "format": FORMAT,
        "member_id": m.id,
        "member_no": m.member_no,
        "generated_at": now.isoformat(),
        "files": [
            {
                "name": fname,
                "rows": len(tables[fname.rsplit(".", 1)[0]]),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
            for fname, body in files.items()
        ],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
        for fname, body in files.items():
            z.writestr(fname, body)
    audit.record(session, actor, "member.export", "member", m.id, org_path=m.org_path, after=None)
    return Export(f"{m.member_no}-export.zip", buf.getvalue(), manifest)


def _scrub(value: Any, secrets: set[str]) -> Any:
    """``value`` with personal keys and any string holding a known personal value erased."""
    if isinstance(value, dict):
        return {
            k: (ERASED if k in PERSONAL_KEYS and v is not None else _scrub(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, str) and any(s in value for s in secrets):
        return ERASED
    return value


def _secrets(session: Session, m: Member) -> set[str]:
    found = {str(v) for v in (m.phone, m.email, m.name, m.external_id) if v}
    if m.birthday:
        found.add(m.birthday.isoformat())
    found.update(v for _k, v in members.identities(session, m.id))
    if m.phone and m.phone.startswith("+86"):
        found.add(m.phone[3:])  # the national form, as typed in messages and notes
    return {s for s in found if len(s) >= 2}  # Chinese names are two or three characters


def erase(session: Session, actor: Actor, member_id: int, *, reason: str = "request") -> Member:
    """Erase the member's personal data everywhere, keeping every figure. Idempotent."""
    require(actor, PRIVACY_MANAGE)
    m = members.get(session, actor, member_id)
    if m.erased_at is not None:
        return m
    secrets = _secrets(session, m)
    now = utcnow()
    for name in PERSONAL:
        setattr(m, name, None)
    m.referral_code = None
    m.erased_at = now
    m.updated_at = now
    session.execute(delete(MemberIdentity).where(MemberIdentity.member_id == m.id))
    session.execute(delete(MemberSession).where(MemberSession.member_id == m.id))
    session.execute(delete(MemberLoginCode).where(MemberLoginCode.member_id == m.id))
    if secrets:
        session.execute(delete(Message).where(Message.recipient.in_(sorted(secrets))))
        for msg in session.scalars(
            select(Message).where(or_(*[Message.body.contains(s) for s in secrets]))
        ):
            msg.body, msg.subject, msg.params = ERASED, ERASED, {}
    for task in session.scalars(select(MemberTask).where(MemberTask.member_id == m.id)):
        task.title = _scrub(task.title, secrets)
        task.note = _scrub(task.note, secrets) if task.note else task.note
    for row in session.scalars(
        select(AuditLog).where(AuditLog.object_type == "member", AuditLog.object_id == str(m.id))
    ):
        row.before = _scrub(row.before, secrets) if row.before else row.before
        row.after = _scrub(row.after, secrets) if row.after else row.after
    event_ids = []
    for ev in session.scalars(select(OutboxEvent).where(OutboxEvent.member_id == m.id)):
        ev.payload = _scrub(ev.payload, secrets)
        event_ids.append(ev.event_id)
    if event_ids:
        deliveries = select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(event_ids))
        session.execute(
            update(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(deliveries))
            .values(response_body=None)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    events.emit(
        session,
        "member.erased",
        {"member_id": m.id, "erased_at": now.isoformat(), "reason": reason, "by": actor.name},
        member_id=m.id,
        org_path=m.org_path,
    )
    audit.record(
        session,
        actor,
        "member.erase",
        "member",
        m.id,
        org_path=m.org_path,
        after={"reason": reason},
    )
    return m


def inactive_members(session: Session, now: datetime, days: int, limit: int) -> list[int]:
    """Members not yet erased with no order, no points movement and no joining in ``days``."""
    cutoff = now - timedelta(days=days)
    recent_entry = (
        select(LedgerEntry.id)
        .where(LedgerEntry.member_id == Member.id, LedgerEntry.occurred_at >= cutoff)
        .exists()
    )
    recent_order = (
        select(Order.id).where(Order.member_id == Member.id, Order.occurred_at >= cutoff).exists()
    )
    q = (
        select(Member.id)
        .where(
            Member.erased_at.is_(None),
            Member.created_at < cutoff,
            ~recent_entry,
            ~recent_order,
        )
        .order_by(Member.id)
        .limit(limit)
    )
    return [int(x) for x in session.scalars(q)]
