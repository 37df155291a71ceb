"""A member's data export (zip of JSON + CSV with a manifest) and erasure (right to be
forgotten, and the retention job): after erasure nothing in the database, the event
payloads, the webhook logs or the logs holds the member's phone, name, e-mail or openid,
while balances, lots with their expiry, ledger chains, orders and the dashboard's figures
are identical; ``member.erased`` is emitted; only ``privacy.manage`` may do either."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import zipfile
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.cli.test_cli_commands import Cli, cli, run  # noqa: F401 (fixtures)
from tests.integration.privacy.test_encryption import (
    DISTINCTIVE,
    E164,
    EMAIL,
    NAME,
    OPENID,
    PHONE,
    join,
    logs,  # noqa: F401 (fixture)
    stored_bytes,
)
from tests.itest import assert_problem, counts, new_member, rows
from tests.support import api_client, order_payload

from loyalist.dashboard import service as dashboards
from loyalist.dashboard.service import Period
from loyalist.errors import Forbidden
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.schemas import MemberUpdate
from loyalist.models import (
    ConsentRecord,
    LedgerEntry,
    Member,
    MemberConsent,
    MemberTask,
    Message,
    MessageAttempt,
    MessageAuthorisation,
    Order,
    OutboxEvent,
    PointsAccount,
    PointsLot,
    ReferralSignal,
)
from loyalist.privacy import service as privacy

PERIOD = Period(date(2026, 6, 1), date(2026, 6, 11))


def busy_member(world: Any, client: Any) -> int:
    mid = join(client).json()["id"]
    assert (
        client.post(
            f"/v1/members/{mid}/adjustments", json={"points": 800, "reason": "开户礼"}
        ).status_code
        == 201
    )
    r = client.post("/v1/orders", json=order_payload("o-priv", mid, paid=25_000))
    assert r.status_code == 201, r.text
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"})
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        members.update(s, SYSTEM, mid, MemberUpdate(city="杭州", email="qiuyueling.2@example.org"))
        members.update(s, SYSTEM, mid, MemberUpdate(email=EMAIL))
        s.add(
            MemberTask(
                member_id=mid,
                org_path="/",
                title=f"回访 {NAME}",
                note=f"致电 {PHONE}，确认地址",
                due_at=None,
                status="open",
                created_by="test",
                created_at=world.now
                if hasattr(world, "now")
                else s.scalar(select(Member.created_at)),
                closed_at=None,
                closed_by=None,
            )
        )
        s.add(
            Message(
                channel="sms",
                recipient=E164,
                template="welcome",
                locale="zh_CN",
                params={"name": NAME},
                subject="欢迎",
                body=f"{NAME}，欢迎加入",
                created_at=s.scalar(select(Member.created_at)),
            )
        )
    merged_tables(world, client, mid)
    return mid


SOURCE = f"门店登记 {NAME} {PHONE}"


def merged_tables(world: Any, client: Any, mid: int) -> None:
    """Traces in the tables of features merged after issue 13: a marketing message to the
    member (by id, with the provider's answer naming the phone), a sign-in code sent to the
    phone before joining (no member id), the consent ledger with a source naming them, a
    subscribe authorisation, a referral signal (a keyed digest of the phone)."""
    r = client.post(
        f"/v1/members/{mid}/consent-records",
        json={
            "purpose": "marketing",
            "channel": "sms",
            "granted": True,
            "text_version": "v2026-1",
            "source": SOURCE,
        },
    )
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/members/{mid}/message-authorisations", json={"template_id": "tpl-1"})
    assert r.status_code in (200, 201), r.text
    r = client.post(
        "/v1/referrals/signals", json={"member_id": mid, "kind": "phone", "value": PHONE}
    )
    assert r.status_code in (200, 201), r.text
    with world.db.transaction() as s:
        at = s.scalar(select(Member.created_at).where(Member.id == mid))
        assert at is not None
        msg = Message(
            channel="email",
            recipient=EMAIL,
            template="promo",
            locale="zh_CN",
            params={"name": NAME},
            subject=f"{NAME}，您的专属优惠",
            body="本周双倍积分",  # names no one: found by member id, not by text
            created_at=at,
            member_id=mid,
            purpose="marketing",
            status="failed",
        )
        code = Message(
            channel="sms",
            recipient=E164,
            template="login_code",
            locale="zh_CN",
            params={"code": "482913"},
            subject="验证码",
            body="验证码 482913",
            created_at=at,
        )
        queued = Message(
            channel="sms",
            recipient=E164,
            template="points_expiring",
            locale="zh_CN",
            params={"name": NAME, "points": 300},
            subject="积分即将过期",
            body=f"{NAME}，您有 300 积分即将过期",
            created_at=at,
            member_id=mid,
            purpose="transactional",
            status="queued",
        )
        s.add_all([msg, code, queued])
        s.flush()
        s.add(
            MessageAttempt(
                message_id=msg.id,
                attempt=1,
                at=at,
                outcome="refused",
                code="InvalidRecipient",
                detail=f"mailbox {EMAIL} unknown",
                provider_id="smtp-1",
            )
        )


def merged_figures(db: Database, mid: int) -> dict[str, Any]:
    """What erasure keeps in the merged tables: message rows and statuses, quotas, the
    consent choices (purpose, channel, granted, version)."""
    with db.transaction() as s:
        return {
            "messages": [
                (x.id, x.member_id, x.channel, x.purpose, x.created_at)
                for x in s.scalars(select(Message).order_by(Message.id))
            ],
            "attempts": [
                (a.id, a.message_id, a.outcome, a.code)
                for a in s.scalars(select(MessageAttempt).order_by(MessageAttempt.id))
            ],
            "consents": [
                (c.id, c.purpose, c.channel, c.granted, c.text_version)
                for c in s.scalars(
                    select(ConsentRecord)
                    .where(ConsentRecord.member_id == mid)
                    .order_by(ConsentRecord.id)
                )
            ],
        }


def figures(db: Database) -> dict[str, Any]:
    """Everything that must not move: points, lots, chains, orders, dashboard."""
    with db.transaction() as s:
        dashboards.refresh(s, margin=timedelta(0), batch=None)
    with db.transaction() as s:
        board = dashboards.build(s, SYSTEM, unit_code=None, period=PERIOD)
        return {
            "verify": ledger.verify(s),
            "accounts": [
                (a.id, a.available, a.pending, a.debt, a.lifetime_earned, a.chain_seq, a.chain_head)
                for a in s.scalars(select(PointsAccount).order_by(PointsAccount.id))
            ],
            "lots": [
                (lot.id, lot.points, lot.remaining, lot.status, lot.expires_at)
                for lot in s.scalars(select(PointsLot).order_by(PointsLot.id))
            ],
            "entries": [
                (e.id, e.delta_available, e.delta_pending, e.entry_hash)
                for e in s.scalars(select(LedgerEntry).order_by(LedgerEntry.id))
            ],
            "orders": [
                (o.id, o.member_id, o.amount_paid_minor, o.occurred_at)
                for o in s.scalars(select(Order).order_by(Order.id))
            ],
            "members": [
                (m.id, m.member_no, m.tier_code, m.org_path, m.created_at)
                for m in s.scalars(select(Member).order_by(Member.id))
            ],
            "dashboard": asdict(board)
            if hasattr(board, "__dataclass_fields__")
            else board.model_dump(),
        }


def test_export_is_a_zip_of_json_and_csv_with_a_manifest(world: Any, client: Any) -> None:
    mid = busy_member(world, client)
    r = client.get(f"/v1/members/{mid}/export")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["filename"] == f"M{mid:09d}-export.zip"
    z = zipfile.ZipFile(io.BytesIO(base64.b64decode(body["zip_base64"])))
    manifest = json.loads(z.read("manifest.json"))
    assert manifest == body["manifest"]
    assert manifest["format"] == "loyalist.member-export/1" and manifest["member_id"] == mid
    names = {f["name"] for f in manifest["files"]}
    assert set(z.namelist()) == names | {"manifest.json"}
    for f in manifest["files"]:
        assert hashlib.sha256(z.read(f["name"])).hexdigest() == f["sha256"]
    [member] = json.loads(z.read("member.json"))
    assert (member["phone"], member["email"], member["name"]) == (E164, EMAIL, NAME)
    assert member["birthday"] == "1987-11-23" and "phone_bidx" not in member
    idents = json.loads(z.read("identities.json"))
    assert sorted((i["kind"], i["value"]) for i in idents) == [
        ("email", EMAIL),
        ("phone", E164),
        ("wechat_openid", OPENID),
    ]
    entries = json.loads(z.read("ledger_entries.json"))
    assert [e["kind"] for e in entries] == ["adjust", "earn", "redeem"]
    sheet = list(csv.DictReader(io.StringIO(z.read("ledger_entries.csv").decode("utf-8-sig"))))
    assert [int(x["id"]) for x in sheet] == [e["id"] for e in entries]
    assert {f["name"]: f["rows"] for f in manifest["files"]}["orders.json"] == 1
    # the merged features' tables: messages (by id and by address), attempts, consents …
    msgs = json.loads(z.read("messages.json"))
    assert sorted((x["template"], x["recipient"], x["member_id"]) for x in msgs) == [
        ("login_code", E164, None),
        ("points_expiring", E164, mid),
        ("promo", EMAIL, mid),
        ("welcome", E164, None),
    ]
    [attempt] = json.loads(z.read("message_attempts.json"))
    assert attempt["detail"] == f"mailbox {EMAIL} unknown"
    [consent] = json.loads(z.read("consent_records.json"))
    assert (consent["purpose"], consent["source"]) == ("marketing", SOURCE)
    [grant] = json.loads(z.read("message_authorisations.json"))
    assert (grant["template_id"], grant["remaining"]) == ("tpl-1", 1)
    [signal] = json.loads(z.read("referral_signals.json"))
    assert signal["kind"] == "phone" and PHONE not in signal["digest"]
    for table in ("checkins", "badges", "coupons", "journey_runs", "referrals_made"):
        assert json.loads(z.read(f"{table}.json")) == []
        assert f"{table}.csv" in names
    # staff without privacy.manage cannot export; a member of another scope is a 404
    with api_client(world.db, world.keys["sh1"]) as store:
        assert_problem(store.get(f"/v1/members/{mid}/export"), 404)
    assert rows(world.db, "SELECT action FROM audit_log WHERE action = 'member.export'")


def test_erasure_removes_every_trace_and_keeps_every_figure(
    world: Any,
    client: Any,
    logs: Any,  # noqa: F811
) -> None:
    mid = busy_member(world, client)
    other = new_member(client, "13800000009", name="路人甲")
    client.post("/v1/orders", json=order_payload("o-other", other, paid=9_900))
    before = figures(world.db)
    kept = merged_figures(world.db, mid)
    # before: the traces are there (masked in audit, in clear in messages and tasks)
    assert E164.encode() in stored_bytes(world.db)
    r = client.post(f"/v1/members/{mid}/erase", headers={"Idempotency-Key": "erase-1"})
    assert r.status_code == 200, r.text
    assert r.json()["member_id"] == mid
    again = client.post(f"/v1/members/{mid}/erase")
    assert (again.status_code, again.json()["erased_at"]) == (200, r.json()["erased_at"])
    assert figures(world.db) == before
    assert merged_figures(world.db, mid) == kept  # rows, statuses and choices stay
    with world.db.transaction() as s:
        assert {(x.recipient, x.subject, x.body) for x in s.scalars(select(Message))} == {
            ("[erased]", "[erased]", "[erased]")
        }
        assert sorted((x.template, x.status, x.reason) for x in s.scalars(select(Message))) == [
            ("login_code", "sent", None),
            ("points_expiring", "suppressed", "member_erased"),  # was queued: never sent now
            ("promo", "failed", None),
            ("welcome", "sent", None),
        ]
        assert [a.detail for a in s.scalars(select(MessageAttempt))] == [None]
        assert [c.source for c in s.scalars(select(ConsentRecord))] == ["[erased]"]
        assert [c.source for c in s.scalars(select(MemberConsent))] == ["[erased]"]
        assert s.scalars(select(MessageAuthorisation)).all() == []
        assert s.scalars(select(ReferralSignal)).all() == []
    with world.db.transaction() as s:
        m = s.get(Member, mid)
        assert m is not None and (m.phone, m.email, m.name, m.birthday, m.city) == (None,) * 5
        assert members.identities(s, mid) == []
        assert members.find_by_identity(s, "phone", E164) is None
        erased = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "member.erased")).one()
        assert erased.payload["member_id"] == mid and erased.payload["reason"] == "request"
        other_m = s.get(Member, other)
        assert other_m is not None and other_m.name == "路人甲"
    dump = stored_bytes(world.db)
    for value in DISTINCTIVE:
        assert value.encode("utf-8") not in dump, value
    assert E164.encode() not in dump and "路人甲".encode() not in dump  # (encrypted anyway)
    # the member can join again as a new member with the same phone
    fresh = client.post("/v1/members", json={"phone": PHONE})
    assert fresh.status_code == 201 and fresh.json()["id"] != mid


def test_erasure_needs_the_privacy_permission_and_changes_nothing_without_it(
    world: Any, client: Any
) -> None:
    mid = join(client).json()["id"]
    before = counts(world.db)
    with api_client(world.db, world.keys["sh1"]) as store:
        assert_problem(store.post(f"/v1/members/{mid}/erase"), 404)
    clerk = Actor(name="user:clerk", scope_path="/", can_write=True, permissions=frozenset())
    with world.db.transaction() as s, pytest.raises(Forbidden, match=r"privacy\.manage"):
        privacy.erase(s, clerk, mid)
    assert counts(world.db) == before
    assert_problem(client.post("/v1/members/999999/erase"), 404)


def test_the_retention_job_erases_inactive_members_only(
    world: Any, client: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loyalist.privacy.tasks  # noqa: F401 (registers the job)
    from loyalist.config import get_settings

    quiet = join(client).json()["id"]
    active = new_member(client, "13800000005")
    clock.advance(timedelta(days=400))
    client.post(
        "/v1/orders",
        json=order_payload("o-act", active, paid=5_000, occurred_at=clock.now().isoformat()),
    )
    monkeypatch.setenv("LOYALIST_PRIVACY_RETENTION_DAYS", "365")
    get_settings.cache_clear()
    try:
        with world.db.transaction() as s:
            queue.enqueue(s, "privacy.retention", {})
        queue.run_until_empty(world.db)
    finally:
        monkeypatch.delenv("LOYALIST_PRIVACY_RETENTION_DAYS")
        get_settings.cache_clear()
    with world.db.transaction() as s:
        q, a = s.get(Member, quiet), s.get(Member, active)
        assert q is not None and q.erased_at is not None and q.phone is None
        assert a is not None and a.erased_at is None and a.phone == "+8613800000005"
        ev = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "member.erased")).all()
        assert [(e.payload["member_id"], e.payload["reason"]) for e in ev] == [(quiet, "retention")]


def test_the_cli_exports_and_erases(
    world: Any,
    client: Any,
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    mid = join(client).json()["id"]
    out = tmp_path / "export.zip"
    r = cli("privacy", "export", str(mid), "--out", str(out))
    assert r.exit_code == 0, r.output
    manifest = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    assert manifest["member_id"] == mid
    assert cli("privacy", "erase", str(mid), "--yes").exit_code == 0
    with world.db.transaction() as s:
        m = s.get(Member, mid)
        assert m is not None and m.erased_at is not None and m.phone is None
    missing = cli("privacy", "export", "999999")
    assert missing.exit_code == 1 and "No member 999999" in missing.stderr
