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
from loyalist.errors import Forbidden
from loyalist.events import service as events
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.models import (
    ActionReceipt,
    AdjustmentRequest,
    AuditLog,
    ChallengeProgress,
    Checkin,
    ConsentRecord,
    CouponCode,
    CouponMemberUse,
    CouponRedemption,
    FraudReview,
    HabitActivity,
    HabitFact,
    Household,
    HouseholdInvitation,
    JourneyRun,
    JourneyStep,
    LeaderboardScore,
    LedgerEntry,
    Member,
    MemberBadge,
    MemberConsent,
    MemberFreeze,
    MemberIdentity,
    MemberLoginCode,
    MemberMerge,
    MemberPass,
    MemberRfm,
    MemberSession,
    MemberTag,
    MemberTask,
    Message,
    MessageAttempt,
    MessageAuthorisation,
    MessageQuota,
    Order,
    OutboxEvent,
    PointsAccount,
    PointsAccountMember,
    PointsLot,
    Recommendation,
    Redemption,
    Referral,
    ReferralCode,
    ReferralLeader,
    ReferralReward,
    ReferralSignal,
    RewardQuote,
    RewardUsage,
    TierChange,
    ViralAssist,
    ViralAssistHelp,
    ViralGroup,
    ViralGroupMember,
    WebhookAttempt,
    WebhookDelivery,
)

ERASED = "[erased]"
#: A message's ``reason`` when erasure stopped it before delivery.
MEMBER_ERASED = "member_erased"
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
    # -- the tables of features merged after issue 13 (privacy2) -------------------------
    ("tasks", MemberTask, MemberTask.member_id),
    ("consent_records", ConsentRecord, ConsentRecord.member_id),
    ("message_quotas", MessageQuota, MessageQuota.member_id),
    ("message_authorisations", MessageAuthorisation, MessageAuthorisation.member_id),
    ("household_memberships", PointsAccountMember, PointsAccountMember.member_id),
    ("adjustment_requests", AdjustmentRequest, AdjustmentRequest.member_id),
    ("action_receipts", ActionReceipt, ActionReceipt.member_id),
    ("reward_usage", RewardUsage, RewardUsage.member_id),
    ("coupons", CouponCode, CouponCode.member_id),
    ("coupon_uses", CouponMemberUse, CouponMemberUse.member_id),
    ("coupon_redemptions", CouponRedemption, CouponRedemption.member_id),
    ("referral_code", ReferralCode, ReferralCode.member_id),
    ("referrals_made", Referral, Referral.referrer_id),
    ("referral_received", Referral, Referral.referred_id),
    ("referral_rewards", ReferralReward, ReferralReward.member_id),
    ("referral_leaders", ReferralLeader, ReferralLeader.member_id),
    ("referral_signals", ReferralSignal, ReferralSignal.member_id),
    ("assists_started", ViralAssist, ViralAssist.starter_id),
    ("assists_helped", ViralAssistHelp, ViralAssistHelp.helper_id),
    ("groups_led", ViralGroup, ViralGroup.leader_id),
    ("group_memberships", ViralGroupMember, ViralGroupMember.member_id),
    ("checkins", Checkin, Checkin.member_id),
    ("badges", MemberBadge, MemberBadge.member_id),
    ("habit_activities", HabitActivity, HabitActivity.member_id),
    ("habit_facts", HabitFact, HabitFact.member_id),
    ("challenges", ChallengeProgress, ChallengeProgress.member_id),
    ("leaderboard_scores", LeaderboardScore, LeaderboardScore.member_id),
    ("journey_runs", JourneyRun, JourneyRun.member_id),
    ("journey_steps", JourneyStep, JourneyStep.member_id),
    ("points_accounts", PointsAccount, PointsAccount.owner_member_id),
    # -- households, merge, fraud, economics and recommendations (session 5) ---------------
    ("households_owned", Household, Household.owner_member_id),
    ("household_invitations", HouseholdInvitation, HouseholdInvitation.member_id),
    ("merges_as_survivor", MemberMerge, MemberMerge.survivor_id),
    ("merges_as_merged", MemberMerge, MemberMerge.merged_id),
    ("fraud_reviews", FraudReview, FraudReview.member_id),
    ("freezes", MemberFreeze, MemberFreeze.member_id),
    ("passes", MemberPass, MemberPass.member_id),
    ("rfm", MemberRfm, MemberRfm.member_id),
    ("recommendations", Recommendation, Recommendation.member_id),
    ("reward_quotes", RewardQuote, RewardQuote.member_id),
]
#: Columns naming a member that the export leaves out on purpose, and why (a test checks
#: that every column naming a member is exported or listed here).
NOT_EXPORTED: dict[tuple[str, str], str] = {
    ("member", "id"): "the member row itself (member.json)",
    ("message", "member_id"): "exported with messages sent to the member's addresses",
    ("outbox_event", "member_id"): "internal event stream; its figures are in other tables",
    ("member_session", "member_id"): "sign-in secrets",
    ("member_login_code", "member_id"): "sign-in secrets",
    ("viral_assist_help", "starter_id"): "another member's help (exported to the helper)",
    ("journey_run", "active_member"): "the same as member_id while a run is active",
    ("action_receipt", "member_key"): "the same as member_id (0 for none)",
    ("duplicate_candidate", "member_a_id"): "a staff review pair naming another member too",
    ("duplicate_candidate", "member_b_id"): "a staff review pair naming another member too",
    ("fraud_check", "member_id"): "fraud-prevention log (keyed device and address digests); "
    "its decisions are exported as fraud_reviews and freezes",
    ("fraud_device_member", "member_id"): "fraud-prevention counter (a keyed device digest)",
}
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
    return _export(session, actor, members.get(session, actor, member_id))


def export_own(session: Session, actor: Actor, member_id: int) -> Export:
    """The member's own export, from the member page: ``actor`` is the signed-in member
    (``member:<id>``), who may export themselves only; no staff permission is needed."""
    if actor.principal != f"member:{member_id}":
        raise Forbidden("A member may export only their own data.")
    m = session.get(Member, member_id)
    if m is None or m.erased_at is not None:
        raise MemberNotFound(f"No member {member_id}.")
    return _export(session, actor, m)


def _export(session: Session, actor: Actor, m: Member) -> Export:
    tables: dict[str, list[dict[str, Any]]] = {"member": [_row(m)]}
    for name, model, column in _TABLES:
        q = select(model).where(column == m.id).order_by(*model.__table__.primary_key.columns)
        tables[name] = [_row(r) for r in session.scalars(q)]
    msgs = list(session.scalars(_messages_of(session, m).order_by(Message.id)))
    tables["messages"] = [_row(x) for x in msgs]
    tables["message_attempts"] = [
        _row(a)
        for a in session.scalars(
            select(MessageAttempt)
            .where(MessageAttempt.message_id.in_([x.id for x in msgs]))
            .order_by(MessageAttempt.id)
        )
    ]
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


def _addresses(session: Session, m: Member) -> list[str]:
    """The member's addresses as messages name them (phone, e-mail, openid …)."""
    found = {str(v) for v in (m.phone, m.email) if v}
    found.update(v for _k, v in members.identities(session, m.id))
    return sorted(found)


def _messages_of(session: Session, m: Member) -> Any:
    """The messages to the member: theirs by id, and those sent to one of their addresses
    before they joined (sign-in codes)."""
    addresses = _addresses(session, m)
    if not addresses:
        return select(Message).where(Message.member_id == m.id)
    return select(Message).where(or_(Message.member_id == m.id, Message.recipient.in_(addresses)))


def _scrub_text(value: str | None, secrets: set[str]) -> str | None:
    return ERASED if value is not None and any(s in value for s in secrets) else value


def _erase_merged_tables(session: Session, m: Member, secrets: set[str]) -> None:
    """Erasure in the tables of features merged after issue 13 (privacy2): messages and
    their provider answers are pseudonymised (the rows and counts stay; a message not yet
    delivered is suppressed, reason ``member_erased``), standing
    permissions to reach the member (subscribe authorisations) and the keyed digests of
    their identifiers (referral signals) are deleted, free text naming them is replaced.
    Counters, coupons, habits, referrals and journeys hold no personal value: they stay,
    so every figure built on them is unchanged."""
    msgs = list(session.scalars(_messages_of(session, m)))
    now = utcnow()
    for msg in msgs:
        msg.recipient, msg.subject, msg.body, msg.params = ERASED, ERASED, ERASED, {}
        if msg.status in ("queued", "held"):  # never delivered now: nobody to send it to
            msg.status, msg.reason, msg.updated_at = "suppressed", MEMBER_ERASED, now
    if msgs:
        session.execute(
            update(MessageAttempt)
            .where(MessageAttempt.message_id.in_([x.id for x in msgs]))
            .values(detail=None)
            .execution_options(synchronize_session=False)
        )
    if secrets:
        for msg in session.scalars(
            select(Message).where(or_(*[Message.body.contains(s) for s in secrets]))
        ):  # another member's message naming this one (a referral, a household invite)
            msg.body, msg.subject, msg.params = ERASED, ERASED, {}
    for rec in session.scalars(select(ConsentRecord).where(ConsentRecord.member_id == m.id)):
        rec.source = _scrub_text(rec.source, secrets) or ""
        rec.actor = _scrub_text(rec.actor, secrets)
    for cur in session.scalars(select(MemberConsent).where(MemberConsent.member_id == m.id)):
        cur.source = _scrub_text(cur.source, secrets)
    session.execute(delete(MessageAuthorisation).where(MessageAuthorisation.member_id == m.id))
    session.execute(delete(ReferralSignal).where(ReferralSignal.member_id == m.id))
    for req in session.scalars(
        select(AdjustmentRequest).where(AdjustmentRequest.member_id == m.id)
    ):
        req.reason = _scrub_text(req.reason, secrets) or ""
    for receipt in session.scalars(select(ActionReceipt).where(ActionReceipt.member_id == m.id)):
        receipt.params = _scrub(receipt.params, secrets)
        receipt.result = _scrub(receipt.result, secrets)
    for step in session.scalars(select(JourneyStep).where(JourneyStep.member_id == m.id)):
        step.detail = _scrub(step.detail, secrets)


def erase(session: Session, actor: Actor, member_id: int, *, reason: str = "request") -> Member:
    """Erase the member's personal data everywhere, keeping every figure. Idempotent."""
    require(actor, PRIVACY_MANAGE)
    m = members.get(session, actor, member_id)
    if m.erased_at is not None:
        return m
    secrets = _secrets(session, m)
    _erase_merged_tables(session, m, secrets)  # first: it finds messages by address
    now = utcnow()
    for name in PERSONAL:
        setattr(m, name, None)
    m.referral_code = None
    m.erased_at = now
    m.updated_at = now
    session.execute(delete(MemberIdentity).where(MemberIdentity.member_id == m.id))
    session.execute(delete(MemberSession).where(MemberSession.member_id == m.id))
    session.execute(delete(MemberLoginCode).where(MemberLoginCode.member_id == m.id))
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
