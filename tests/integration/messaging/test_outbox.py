"""The one message path: consent per purpose and channel, frequency caps per local day and
week, quiet hours that hold and release, transactional messages that bypass both, every
suppression recorded with its reason, delivery by a job with retries and receipts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.itest import new_member

from loyalist import bootstrap
from loyalist.documents import service as documents
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.member import consent
from loyalist.messaging import outbox
from loyalist.messaging import settings as adapters
from loyalist.messaging.channels import DeliveryFailed, Outgoing, Receipt
from loyalist.models import ConsentRecord, Job, Message, MessageAttempt, MessageQuota

NOTICE = {"text": "周末会员日"}


class Recorder:
    """An adapter that keeps what it is given; ``fail`` scripts DeliveryFailed answers."""

    name = "recorder"

    def __init__(self) -> None:
        self.delivered: list[Outgoing] = []
        self.fail: list[tuple[str, bool]] = []  # (code, retry)

    def deliver(self, out: Outgoing) -> Receipt:
        if self.fail:
            code, retry = self.fail.pop(0)
            exc = DeliveryFailed(code)
            exc.code, exc.retry = code, retry
            raise exc
        self.delivered.append(out)
        return Receipt(f"r-{out.message_id}", "OK")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    bootstrap.configure()
    r = Recorder()
    adapters.use({"sms": r, "email": r})
    yield r
    adapters.reset()


def _configure(world: Any, **doc: Any) -> None:
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, "messaging", doc, note="test")


def _send(world: Any, mid: int, template: str = "notice", **kw: Any) -> outbox.SendResult:
    data = kw.pop("data", NOTICE)
    with world.db.transaction() as s:
        return outbox.send(s, mid, template, data, **kw)


def _rows(world: Any) -> list[tuple[str, str, str | None]]:
    with world.db.transaction() as s:
        q = select(Message.channel, Message.status, Message.reason).order_by(Message.id)
        return [(c, st, r) for c, st, r in s.execute(q)]


def _at_local(clock: Any, hh: int, mm: int = 0, day: int = 10) -> None:
    # Shanghai is UTC+8 all year.
    clock.freeze(datetime(2026, 6, day, hh, mm, tzinfo=UTC) - timedelta(hours=8))


def test_five_marketing_messages_with_a_cap_of_two_send_two(
    world: Any, client: Any, clock: Any, recorder: Recorder
) -> None:
    _configure(world, caps={"sms": {"day": 2}}, quiet_hours=None)
    mid = new_member(client, "13800000001", consents={"sms": True})
    results = [_send(world, mid, purpose="marketing").status for _ in range(5)]
    assert results == ["queued", "queued", "suppressed", "suppressed", "suppressed"]
    assert _rows(world) == [("sms", "queued", None)] * 2 + [("sms", "suppressed", "cap_day")] * 3
    assert queue.run_until_empty(world.db) == 2
    assert [o.body for o in recorder.delivered] == ["通知：周末会员日"] * 2
    # Transactional messages are not counted and not capped.
    assert _send(world, mid, purpose="transactional").status == "queued"
    # The next local day the cap starts again (23:59 → 00:01 Shanghai crosses it).
    _at_local(clock, 23, 59)
    assert _send(world, mid, purpose="marketing", data={"text": "x"}).status == "suppressed"
    _at_local(clock, 0, 1, day=11)
    assert _send(world, mid, purpose="marketing").status == "queued"
    with world.db.transaction() as s:
        quotas = {p: u for p, u in s.execute(select(MessageQuota.period, MessageQuota.used))}
    assert quotas == {"d2026-06-10": 2, "d2026-06-11": 1}


def test_the_weekly_cap_counts_the_local_iso_week(
    world: Any, client: Any, clock: Any, recorder: Recorder
) -> None:
    _configure(world, caps={"sms": {"day": 5, "week": 3}}, quiet_hours=None)
    mid = new_member(client, "13800000001", consents={"sms": True})
    # 2026-06-08 is a Monday; Sunday 14th is the same ISO week, Monday 15th the next.
    statuses = []
    for day in (8, 10, 12, 14, 15):
        _at_local(clock, 12, day=day)
        statuses.append(_send(world, mid, purpose="marketing").status)
    assert statuses == ["queued", "queued", "queued", "suppressed", "queued"]
    assert _rows(world)[3] == ("sms", "suppressed", "cap_week")
    with world.db.transaction() as s:
        # The suppressed one took nothing from its day either (savepoint rolled back).
        q = select(MessageQuota.period, MessageQuota.used).order_by(MessageQuota.period)
        assert [tuple(r) for r in s.execute(q)] == [
            ("d2026-06-08", 1),
            ("d2026-06-10", 1),
            ("d2026-06-12", 1),
            ("d2026-06-15", 1),
            ("w2026-W24", 3),
            ("w2026-W25", 1),
        ]


def test_a_message_due_at_2300_goes_at_0800_and_a_sign_in_code_at_2300(
    world: Any, client: Any, clock: Any, recorder: Recorder
) -> None:
    mid = new_member(client, "13800000001", consents={"sms": True})
    _at_local(clock, 23, 0)
    held = _send(world, mid, purpose="marketing")
    code = _send(world, mid, "signin_code", data={"code": "135790", "minutes": 5})
    assert (held.status, held.reason) == ("held", "quiet_hours")
    assert code.status == "queued"
    assert queue.run_until_empty(world.db) == 1
    assert [o.template for o in recorder.delivered] == ["signin_code"]
    with world.db.transaction() as s:
        msg = s.get(Message, held.message_id)
        assert msg is not None
        assert msg.due_at == datetime(2026, 6, 11, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
    clock.advance(timedelta(hours=8, minutes=59))  # 07:59
    assert queue.run_until_empty(world.db) == 0
    clock.advance(timedelta(minutes=1))  # 08:00
    assert queue.run_until_empty(world.db) == 1
    assert [o.template for o in recorder.delivered] == ["signin_code", "notice"]
    with world.db.transaction() as s:
        msg = s.get(Message, held.message_id)
        assert msg is not None
        assert (msg.status, msg.sent_at) == ("sent", datetime(2026, 6, 11, 0, 0, tzinfo=UTC))


def test_quiet_hours_follow_the_published_window(
    world: Any, client: Any, clock: Any, recorder: Recorder
) -> None:
    _configure(world, quiet_hours={"start": "22:30", "end": "07:00"})
    mid = new_member(client, "13800000001", consents={"sms": True})
    _at_local(clock, 22, 29)
    assert _send(world, mid, purpose="marketing").status == "queued"
    _at_local(clock, 22, 30)
    assert _send(world, mid, purpose="marketing").status == "held"
    _at_local(clock, 6, 59, day=11)
    late = _send(world, mid, purpose="marketing")
    with world.db.transaction() as s:
        msg = s.get(Message, late.message_id)
        assert msg is not None and msg.due_at == datetime(2026, 6, 10, 23, 0, tzinfo=UTC)


def test_consent_is_per_purpose_and_channel_and_the_newest_record_wins(
    world: Any, client: Any, recorder: Recorder
) -> None:
    mid = new_member(client, "13800000001", email="a@example.com", consents={"sms": True})
    assert _send(world, mid, purpose="marketing", channel="email").reason == "no_consent"
    assert _send(world, mid, purpose="personalisation").reason == "no_consent"
    with world.db.transaction() as s:
        consent.append(
            s, mid, "personalisation", "any", True, text_version="p-2026-05", source="member_page",
            actor="member",
        )  # fmt: skip
    assert _send(world, mid, purpose="personalisation").status == "queued"
    # Withdrawing marketing on SMS through the member API is recorded in the ledger too.
    r = client.put(f"/v1/members/{mid}/consents/sms", json={"granted": False, "source": "call"})
    assert r.status_code == 200
    assert _send(world, mid, purpose="marketing").reason == "no_consent"
    assert _send(world, mid, purpose="transactional").status == "queued"  # no consent needed
    with world.db.transaction() as s:
        q = select(
            ConsentRecord.purpose,
            ConsentRecord.channel,
            ConsentRecord.granted,
            ConsentRecord.text_version,
            ConsentRecord.source,
        ).order_by(ConsentRecord.id)
        assert [tuple(r) for r in s.execute(q)] == [
            ("marketing", "sms", True, "unversioned", "join"),
            ("personalisation", "any", True, "p-2026-05", "member_page"),
            ("marketing", "sms", False, "unversioned", "call"),
        ]
    assert [r for r in _rows(world) if r[1] == "suppressed"] == [
        ("email", "suppressed", "no_consent"),
        ("sms", "suppressed", "no_consent"),
        ("sms", "suppressed", "no_consent"),
    ]


def test_a_failed_delivery_is_retried_with_backoff_and_every_attempt_recorded(
    world: Any, client: Any, clock: Any, recorder: Recorder
) -> None:
    mid = new_member(client, "13800000001")
    recorder.fail = [("isp.SYSTEM_ERROR", True), ("isv.BUSINESS_LIMIT_CONTROL", True)]
    sent = _send(world, mid, "points_awarded", data={"points": 5, "reason": "签到"})
    assert queue.run_until_empty(world.db) == 1
    clock.advance(timedelta(seconds=29))
    assert queue.run_until_empty(world.db) == 0  # the first retry waits 30 s
    clock.advance(timedelta(seconds=1))
    assert queue.run_until_empty(world.db) == 1
    clock.advance(timedelta(seconds=59))
    assert queue.run_until_empty(world.db) == 0  # the second waits 60 s
    clock.advance(timedelta(seconds=1))
    assert queue.run_until_empty(world.db) == 1
    assert queue.run_until_empty(world.db) == 0
    with world.db.transaction() as s:
        msg = s.get(Message, sent.message_id)
        assert msg is not None
        assert (msg.status, msg.attempts, msg.provider_id) == ("sent", 3, f"r-{msg.id}")
        q = select(MessageAttempt.attempt, MessageAttempt.outcome, MessageAttempt.code)
        assert [tuple(r) for r in s.execute(q.order_by(MessageAttempt.id))] == [
            (1, "failed", "isp.SYSTEM_ERROR"),
            (2, "failed", "isv.BUSINESS_LIMIT_CONTROL"),
            (3, "sent", "OK"),
        ]
    assert len(recorder.delivered) == 1


def test_a_permanent_refusal_is_not_retried(world: Any, client: Any, recorder: Recorder) -> None:
    mid = new_member(client, "13800000001")
    recorder.fail = [("isv.MOBILE_NUMBER_ILLEGAL", False)]
    sent = _send(world, mid)
    assert queue.run_until_empty(world.db) == 1
    with world.db.transaction() as s:
        msg = s.get(Message, sent.message_id)
        assert msg is not None
        assert (msg.status, msg.reason, msg.attempts) == ("failed", "isv.MOBILE_NUMBER_ILLEGAL", 1)
        assert s.scalar(select(func.count()).select_from(Job).where(Job.state != "done")) == 0


def test_delivery_happens_once_however_often_the_job_runs(
    world: Any, client: Any, recorder: Recorder
) -> None:
    mid = new_member(client, "13800000001")
    sent = _send(world, mid)
    for _ in range(3):
        with world.db.transaction() as s:
            outbox.deliver(s, sent.message_id)
    assert queue.run_until_empty(world.db) == 1
    assert len(recorder.delivered) == 1


def test_a_send_in_a_rolled_back_unit_leaves_nothing(
    world: Any, client: Any, recorder: Recorder
) -> None:
    mid = new_member(client, "13800000001")
    with world.db.transaction() as s:
        before = s.scalar(select(func.count()).select_from(Job))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), world.db.transaction() as s:
        outbox.send(s, mid, "notice", NOTICE)
        raise Boom
    with world.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0
        assert s.scalar(select(func.count()).select_from(Job)) == before


def test_bad_templates_and_data_are_errors_and_write_nothing(
    world: Any, client: Any, recorder: Recorder
) -> None:
    mid = new_member(client, "13800000001")
    with pytest.raises(outbox.UnknownTemplate):
        _send(world, mid, "nope")
    with pytest.raises(outbox.MissingData) as info:
        _send(world, mid, "points_awarded", data={"points": 5})
    assert info.value.args[0] == "reason"
    assert _rows(world) == []


def test_the_same_dedupe_key_is_one_message(world: Any, client: Any, recorder: Recorder) -> None:
    mid = new_member(client, "13800000001")
    a = _send(world, mid, dedupe_key="event:abc")
    b = _send(world, mid, dedupe_key="event:abc")
    assert a == b
    assert len(_rows(world)) == 1


def test_points_expiring_events_become_one_reminder_each(
    world: Any, client: Any, clock: Any, recorder: Recorder
) -> None:
    from loyalist.events import consumers
    from loyalist.events import service as events

    mid = new_member(client, "13800000001")
    with world.db.transaction() as s:
        payload = {
            "member_id": mid,
            "points": 1200,
            "expires_at": "2026-07-10T15:59:59+00:00",
            "days_before": 30,
        }
        events.emit(s, "points.expiring", payload, member_id=mid, org_path="/")
        events.emit(s, "points.expiring", payload, member_id=mid, org_path="/")  # stale below
    consumers.run_pending(world.db, limit=1)  # the first event only
    clock.advance(timedelta(days=1, seconds=1))
    consumers.run_pending(world.db)  # the second, now more than a day old: no reminder
    with world.db.transaction() as s:
        (msg,) = s.scalars(select(Message))
        assert (msg.template, msg.channel, msg.body) == (
            "points_expiring",
            "sms",
            "您有 1200 积分将于 2026-07-10 过期，请在此之前使用。",
        )


def test_concurrent_sends_never_pass_the_cap(world: Any, client: Any, recorder: Recorder) -> None:
    import threading

    _configure(world, caps={"sms": {"day": 2}}, quiet_hours=None)
    mid = new_member(client, "13800000001", consents={"sms": True})
    barrier = threading.Barrier(6)
    results: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        r = world.db.run(lambda s: outbox.send(s, mid, "notice", NOTICE, purpose="marketing"))
        with lock:
            results.append(r.status)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["queued"] * 2 + ["suppressed"] * 4
    with world.db.transaction() as s:
        assert s.scalar(select(MessageQuota.used)) == 2


def test_a_channel_without_a_provider_is_skipped_for_the_next_one(
    world: Any, client: Any, recorder: Recorder
) -> None:
    wx = {"template_id": "TPL", "fields": {"thing1": "{text}"}}
    texts = {"zh_CN": {"subject": "通知", "body": "通知：{text}"}}
    _configure(
        world,
        templates={
            "wx_first": {
                "channels": ["wechat_template", "sms"],
                "texts": texts,
                "wechat_template": wx,
            }
        },
    )
    mid = new_member(client, "13800000001")
    r = client.post(f"/v1/members/{mid}/identities", json={"kind": "wechat_openid", "value": "oX1"})
    assert r.status_code == 200
    assert _send(world, mid, "wx_first").channel == "sms"  # no WeChat adapter configured
    push = _send(world, mid, channel="push")
    assert (push.status, push.reason) == ("suppressed", "channel_not_configured")
